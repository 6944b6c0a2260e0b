-- HealthCode schema, version 19: the web console (issue 20), served by the query API.
--
-- An analyst may be allowed to approve or reject changes held for a second operator (0017) in the console;
-- none is by default (`healthcode analysts add ID --may-approve`, `healthcode analysts may-approve ID [--no]`).
ALTER TABLE analyst_credential ADD COLUMN may_approve boolean NOT NULL DEFAULT false;

-- The dashboard shows the dead letters waiting: where they were and why, never their bytes.
GRANT SELECT (dead_letter_id, kafka_topic, kafka_partition, kafka_offset, reason, failed_at, replayed_at)
    ON dead_letters TO hc_api;

-- A held change is decided by this function only: under the row's lock it checks that the change still waits
-- and that who decides is not who asked, records the decision (as the session's role), and activates an
-- approved rule set (its file was stored when it was held). It runs as the owner of the changes and the
-- activations, so that the query API's role, which serves the console, may decide held changes without being
-- able to write either table: it can neither rewrite a decision nor activate a rule set nobody approved.
-- Answers 'decided', 'unknown', 'already-decided' or 'same-operator'.
CREATE FUNCTION hc_decide_held_change(held bigint, approve boolean, operator text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE
    change held_change%ROWTYPE;
    stored smallint;
BEGIN
    SELECT * INTO change FROM held_change WHERE held_id = held FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'unknown';
    ELSIF change.status <> 'held' THEN
        RETURN 'already-decided';
    ELSIF change.requested_by = operator OR coalesce(operator, '') = '' THEN
        RETURN 'same-operator';
    END IF;
    UPDATE held_change
    SET status = CASE WHEN approve THEN 'approved' ELSE 'rejected' END, decided_by = operator,
        decided_at = now(), decided_role = session_user
    WHERE held_id = held;
    IF approve AND change.kind = 'rule-set' THEN
        SELECT ref INTO stored FROM rule_set WHERE body = change.body;
        IF stored IS NULL THEN
            RAISE EXCEPTION 'held change %: its rule set file is not stored; approve it with healthcode approvals', held
                USING ERRCODE = 'no_data_found';
        END IF;
        INSERT INTO rule_set_activation (rule_set, effective_from, activated_by)
        VALUES (stored, coalesce(change.effective_from, now()),
                change.requested_by || ', approved by ' || operator || ' (held change #' || held || ')');
    END IF;
    RETURN 'decided';
END
$$;
REVOKE ALL ON FUNCTION hc_decide_held_change(bigint, boolean, text) FROM PUBLIC;
GRANT SELECT ON rule_set TO hc_audit_owner;

DO $$
DECLARE
    superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT superuser THEN
        EXECUTE format('GRANT hc_audit_owner TO %I', current_user);
    END IF;
    ALTER FUNCTION hc_decide_held_change(bigint, boolean, text) OWNER TO hc_audit_owner;
    GRANT EXECUTE ON FUNCTION hc_decide_held_change(bigint, boolean, text) TO hc_api;
    EXECUTE format('GRANT EXECUTE ON FUNCTION hc_decide_held_change(bigint, boolean, text) TO %I', current_user);
    GRANT SELECT ON held_change TO hc_api;
    IF NOT superuser THEN
        EXECUTE format('REVOKE hc_audit_owner FROM %I', current_user);
    END IF;
END
$$;
