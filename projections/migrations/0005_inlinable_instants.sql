-- The instant conversions become inlinable. PostgreSQL inlines a SQL function into the query that
-- calls it only when its body is as immutable as the function is declared, and `timestamptz +
-- interval` and `extract(... FROM timestamptz)` depend on the session's time zone: every projected
-- row paid for a separate executor run per conversion. Working on timestamps without time zone at
-- UTC gives the same instants and is immutable.
CREATE OR REPLACE FUNCTION hc_instant(microseconds bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN microseconds = -9223372036854775808 THEN NULL
                ELSE (timestamp 'epoch' + microseconds * interval '1 microsecond') AT TIME ZONE 'UTC' END;

CREATE OR REPLACE FUNCTION hc_micros(instant timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (extract(epoch FROM instant AT TIME ZONE 'UTC') * 1000000)::bigint;
