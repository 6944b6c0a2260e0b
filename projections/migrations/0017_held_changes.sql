-- HealthCode schema, version 17: changes held for a second operator (issue 19).
--
-- A rule-set activation or a designation that would turn more than a configured number of people red
-- (`healthcode impact` counts them) is not applied: it is held here with its impact until another operator
-- approves or rejects it (`healthcode approvals list|approve|reject`). A row is the record of the change:
-- who asked, what it would do, who decided, when, as which database role. Only the decision may be written
-- once (held → approved or rejected, by someone other than who asked), and a designation's publication
-- once; nothing is deleted. The table belongs to hc_audit_owner like the other audits.
CREATE TABLE held_change (
    held_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('rule-set', 'designation')),
    -- The rule set's file, or the designation event (JSON), byte for byte as proposed.
    body           text        NOT NULL,
    -- A rule set: the instant it is to take effect.
    effective_from timestamptz,
    turning_red    integer     NOT NULL CHECK (turning_red >= 0),
    threshold      integer     NOT NULL CHECK (threshold >= 0),
    -- The impact report (HealthCodeCore.ImpactReport) that held it.
    impact         json        NOT NULL,
    requested_by   text        NOT NULL CHECK (requested_by <> ''),
    requested_at   timestamptz NOT NULL DEFAULT now(),
    requested_role text        NOT NULL DEFAULT session_user,
    status         text        NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'approved', 'rejected')),
    decided_by     text,
    decided_at     timestamptz,
    decided_role   text,
    -- A designation: when it was appended to the event log after its approval.
    published_at   timestamptz,
    CHECK ((status = 'held') = (decided_by IS NULL)),
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX held_change_waiting ON held_change (held_id) WHERE status = 'held';

-- Only the decision (once) and a designation's publication (once) may change; no row is ever deleted.
CREATE FUNCTION hc_held_change_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP <> 'UPDATE'
       OR (NEW.held_id, NEW.kind, NEW.body, NEW.effective_from, NEW.turning_red, NEW.threshold, NEW.impact::text,
           NEW.requested_by, NEW.requested_at, NEW.requested_role)
          IS DISTINCT FROM
          (OLD.held_id, OLD.kind, OLD.body, OLD.effective_from, OLD.turning_red, OLD.threshold, OLD.impact::text,
           OLD.requested_by, OLD.requested_at, OLD.requested_role)
       OR (OLD.status <> 'held' AND (NEW.status, NEW.decided_by, NEW.decided_at, NEW.decided_role)
                                    IS DISTINCT FROM (OLD.status, OLD.decided_by, OLD.decided_at, OLD.decided_role))
       OR (OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at)
    THEN
        RAISE EXCEPTION 'a held change''s record is written once: only its decision and publication may be added'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER held_change_guard BEFORE UPDATE OR DELETE ON held_change
    FOR EACH ROW EXECUTE FUNCTION hc_held_change_guard();
CREATE TRIGGER held_change_no_truncate BEFORE TRUNCATE ON held_change
    FOR EACH STATEMENT EXECUTE FUNCTION hc_refuse_change();

-- The gateway holds designations and publishes approved ones. To count whom a designation would turn red it
-- reads the states of the people present in its area, the rule set in force and the archive (for states
-- pruned for other rules): pseudonymised data only, as the query API reads.
GRANT SELECT, INSERT ON held_change TO hc_gateway;
GRANT UPDATE (published_at) ON held_change TO hc_gateway;
GRANT SELECT ON person_state, person_presence, rule_set TO hc_gateway;  -- rule_set_activation: below

DO $$
DECLARE
    superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT superuser THEN
        EXECUTE format('GRANT hc_audit_owner TO %I', current_user);
    END IF;
    ALTER TABLE held_change OWNER TO hc_audit_owner;
    -- Granted as a member of its owner (0015 made hc_audit_owner own the activations).
    GRANT SELECT ON rule_set_activation TO hc_gateway;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON held_change TO %I', current_user);
    IF NOT superuser THEN
        EXECUTE format('REVOKE hc_audit_owner FROM %I', current_user);
    END IF;
END
$$;
