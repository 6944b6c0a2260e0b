-- HealthCode schema, version 13: least privilege. Each service logs in as a role of its own that holds only
-- the grants that service needs, so a compromised or buggy service cannot do what its role does not allow:
--
--   hc_gateway    reads the publisher registry, the archives' sources (retraction targets) and the review
--                 officers; counts overrides, holds those over quota, remembers client assertions' jti;
--   hc_projector  reads and writes the projection (archives, states, codes, decision log, positions,
--                 dead letters, presence, area re-evaluations); it cannot read credentials or the audit;
--   hc_api        reads codes, states, decisions, archives, analyst credentials and client platforms, and
--                 appends to the audit; it cannot change a code or a decision.
--
-- The audits (analyst_audit, review_audit) belong to hc_audit_owner, a role that cannot log in and that no
-- service is a member of: only its owner (or a superuser) can disable the triggers that make them
-- insert-only, so no service can erase or rewrite them.
--
-- A later migration that alters an audit table must do what the block at the end does: join
-- hc_audit_owner, alter, leave.
--
-- Roles are cluster-wide: they are created once and granted in every database migrated. The role that runs
-- the migrations needs CREATEROLE (scripts/infra.sh gives it to `healthcode`); the login roles are created
-- without a password: set one (`ALTER ROLE hc_api PASSWORD '…'`) where PostgreSQL requires it, and give it
-- to the service (HC_PG_API_PASSWORD, …).

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['hc_gateway', 'hc_projector', 'hc_api'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', name);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), name);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', name);
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hc_audit_owner') THEN
        CREATE ROLE hc_audit_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

GRANT SELECT ON publisher, event_archive, area_event_archive, review_officer, review_audit TO hc_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON review_override_count, client_assertion_use TO hc_gateway;
GRANT SELECT, INSERT, UPDATE ON held_review TO hc_gateway;

GRANT SELECT, INSERT, UPDATE, DELETE ON event_archive, area_event_archive, person_state, person_code, decision_log,
    consumer_offsets, dead_letters, person_presence, area_reevaluations TO hc_projector;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO hc_projector;

GRANT SELECT ON person_code, person_state, decision_log, event_archive, area_event_archive, person_presence,
    analyst_credential, client_platform, analyst_audit, held_review TO hc_api;
GRANT INSERT ON analyst_audit TO hc_api;

-- Hand the audits (analysts' reads, review decisions) to their owner: the migrating role joins it just long
-- enough to do so (PostgreSQL requires membership of the new owner), then leaves it, so that afterwards not
-- even the migrating role can alter them; it keeps the right to read them, and to append review decisions
-- (`healthcode reviews approve|reject`, `reviews officers`).
DO $$
DECLARE
    audit text;
    superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    -- An owner needs CREATE on the table's schema; hc_audit_owner cannot log in to use it otherwise.
    GRANT CREATE ON SCHEMA public TO hc_audit_owner;
    IF NOT superuser THEN
        EXECUTE format('GRANT hc_audit_owner TO %I', current_user);
    END IF;
    FOREACH audit IN ARRAY ARRAY['analyst_audit', 'review_audit'] LOOP
        EXECUTE format('ALTER TABLE %I OWNER TO hc_audit_owner', audit);
        EXECUTE format('GRANT SELECT ON %I TO %I', audit, current_user);
    END LOOP;
    EXECUTE format('GRANT INSERT ON review_audit TO %I', current_user);
    IF NOT superuser THEN
        EXECUTE format('REVOKE hc_audit_owner FROM %I', current_user);
    END IF;
END
$$;
