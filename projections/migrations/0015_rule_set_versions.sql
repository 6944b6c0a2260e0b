-- HealthCode schema, version 15: rule sets as audited versions (issue 19).
--
-- Until now only a decision's hash named the rule set behind it; the rules themselves were in whichever
-- file a process was started with. `rule_set.body` keeps each rule set's file, byte for byte (null for a
-- rule set registered before this migration by a projector that did not store it), and
-- `rule_set_activation` records every activation: which rule set takes effect from which instant, who
-- activated it, when, and the database role that did. The version in force at an instant is the one with
-- the latest `effective_from` at or before it (the later activation on a tie). Activations are insert-only,
-- like the audits, and belong to hc_audit_owner so that no service can rewrite the history of rules.
ALTER TABLE rule_set ADD COLUMN body text;

CREATE TABLE rule_set_activation (
    activation_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_set       smallint    NOT NULL,
    effective_from timestamptz NOT NULL,
    activated_by   text        NOT NULL CHECK (activated_by <> ''),
    activated_at   timestamptz NOT NULL DEFAULT now(),
    db_role        text        NOT NULL DEFAULT session_user
);
CREATE INDEX rule_set_activation_effective ON rule_set_activation (effective_from, activation_id);
CREATE TRIGGER rule_set_activation_insert_only BEFORE UPDATE OR DELETE ON rule_set_activation
    FOR EACH ROW EXECUTE FUNCTION hc_refuse_change();
CREATE TRIGGER rule_set_activation_no_truncate BEFORE TRUNCATE ON rule_set_activation
    FOR EACH STATEMENT EXECUTE FUNCTION hc_refuse_change();

-- Services read the versions; only the migrating role (`healthcode rules activate`) adds them.
GRANT SELECT ON rule_set_activation TO hc_projector, hc_api;

-- Hand the activations to the audit owner, as 0013 does for the audits: join it, hand over, leave.
DO $$
DECLARE
    superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT superuser THEN
        EXECUTE format('GRANT hc_audit_owner TO %I', current_user);
    END IF;
    ALTER TABLE rule_set_activation OWNER TO hc_audit_owner;
    EXECUTE format('GRANT SELECT, INSERT ON rule_set_activation TO %I', current_user);
    IF NOT superuser THEN
        EXECUTE format('REVOKE hc_audit_owner FROM %I', current_user);
    END IF;
END
$$;
