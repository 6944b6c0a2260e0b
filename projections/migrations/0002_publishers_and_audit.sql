-- HealthCode schema, version 2: who may publish, who may read, and a record of every analyst read.
--
-- No secret is stored here: a publisher holds either an ES256 public key (it signs JWT client
-- assertions with the private key it keeps) or an API key of which only the SHA-256 is kept.
-- API keys are 256-bit random values, so a plain hash cannot be reversed by guessing.

-- Publishers of events. `publisher_id` is the CloudEvents `source` of everything it publishes.
CREATE TABLE publisher (
    publisher_id   text        NOT NULL PRIMARY KEY,
    credential     text        NOT NULL CHECK (credential IN ('es256', 'api-key')),
    public_key_pem text,
    api_key_sha256 text        UNIQUE,
    event_types    text[]      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    CHECK ((credential = 'es256') = (public_key_pem IS NOT NULL)),
    CHECK ((credential = 'api-key') = (api_key_sha256 IS NOT NULL))
);

-- Analysts of the query API (explain, export): an API key (SHA-256 only) per analyst.
CREATE TABLE analyst_credential (
    analyst_id     text        NOT NULL PRIMARY KEY,
    api_key_sha256 text        NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- Every analyst read: who, for which declared purpose, about whom, through which endpoint, when.
-- Insert-only: the triggers below refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE analyst_audit (
    subject    text        NOT NULL,
    audit_id   bigint      GENERATED ALWAYS AS IDENTITY,
    analyst_id text        NOT NULL,
    purpose    text        NOT NULL,
    endpoint   text        NOT NULL,
    read_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, audit_id)
);
CREATE INDEX analyst_audit_read_at ON analyst_audit (read_at);

CREATE FUNCTION hc_refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'table % is insert-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER analyst_audit_insert_only BEFORE UPDATE OR DELETE ON analyst_audit
    FOR EACH ROW EXECUTE FUNCTION hc_refuse_change();
CREATE TRIGGER analyst_audit_no_truncate BEFORE TRUNCATE ON analyst_audit
    FOR EACH STATEMENT EXECUTE FUNCTION hc_refuse_change();
