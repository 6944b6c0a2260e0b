-- Query APIs keep recently read codes in memory and drop them when a code changes. The projector
-- announces the codes it rewrites itself, in the same statement (`ProjectionTransaction.saveCodes`):
-- a row trigger on every upsert would cost it a function call per person. The triggers below cover
-- the writes that do not come from the projector: an operator who deletes codes, or truncates the
-- table to rebuild the projection, tells every listening API. An UPDATE by hand is not announced:
-- after one, run `NOTIFY hc_code_changes, '<pseudonym>'` (or '*' for all), or let the API's maximum
-- cache age pass.
CREATE FUNCTION hc_announce_deleted_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hc_code_changes', OLD.subject);
    RETURN OLD;
END
$$;

CREATE FUNCTION hc_announce_all_codes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hc_code_changes', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER person_code_deleted AFTER DELETE ON person_code
    FOR EACH ROW EXECUTE FUNCTION hc_announce_deleted_code();
CREATE TRIGGER person_code_truncated AFTER TRUNCATE ON person_code
    FOR EACH STATEMENT EXECUTE FUNCTION hc_announce_all_codes();
