-- HealthCode schema, version 19: the web console (issue 20), served by the query API.
--
-- An analyst may be allowed to approve or reject changes held for a second operator (0017) in the console;
-- none is by default (`healthcode analysts add ID --may-approve`, `healthcode analysts may-approve ID [--no]`).
ALTER TABLE analyst_credential ADD COLUMN may_approve boolean NOT NULL DEFAULT false;

-- The dashboard shows the dead letters waiting: where they were and why, never their bytes.
GRANT SELECT (dead_letter_id, kafka_topic, kafka_partition, kafka_offset, reason, failed_at, replayed_at)
    ON dead_letters TO hc_api;

-- Held changes are shown with their impact, and decided by an analyst who may: the decision columns only
-- (the guard trigger of 0017 still allows one decision, by someone other than who asked), and an approved
-- rule set's activation (rule_set rows are stored when a change is held; an activation names one).
GRANT SELECT, INSERT ON rule_set TO hc_api;
GRANT UPDATE (body) ON rule_set TO hc_api;  -- a rule set stored before its file was kept (0015) gets it
GRANT USAGE, SELECT ON SEQUENCE rule_set_ref_seq TO hc_api;
DO $$
DECLARE
    superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT superuser THEN
        EXECUTE format('GRANT hc_audit_owner TO %I', current_user);
    END IF;
    GRANT SELECT ON held_change TO hc_api;
    GRANT UPDATE (status, decided_by, decided_at, decided_role) ON held_change TO hc_api;
    GRANT INSERT ON rule_set_activation TO hc_api;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO hc_api', pg_get_serial_sequence('rule_set_activation', 'activation_id'));
    IF NOT superuser THEN
        EXECUTE format('REVOKE hc_audit_owner FROM %I', current_user);
    END IF;
END
$$;
