-- HealthCode schema, version 13: least privilege. Each service logs in as a role of its own that holds only
-- the grants that service needs, so a compromised or buggy service cannot do what its role does not allow:
--
--   hc_gateway    reads the publisher registry and the archives' sources (retraction targets);
--   hc_projector  reads and writes the projection (archives, states, codes, decision log, positions,
--                 dead letters, presence, area re-evaluations); it cannot read credentials or the audit;
--   hc_api        reads codes, states, decisions, archives and analyst credentials, and appends to the
--                 audit; it cannot change a code or a decision.
--
-- The analyst audit belongs to hc_audit_owner, a role that cannot log in and that no service is a member
-- of: only its owner (or a superuser) can disable the triggers that make the audit insert-only, so no
-- service can erase or rewrite it.
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

GRANT SELECT ON publisher, event_archive, area_event_archive TO hc_gateway;

GRANT SELECT, INSERT, UPDATE, DELETE ON event_archive, area_event_archive, person_state, person_code, decision_log,
    consumer_offsets, dead_letters, person_presence, area_reevaluations TO hc_projector;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO hc_projector;

GRANT SELECT ON person_code, person_state, decision_log, event_archive, area_event_archive, person_presence,
    analyst_credential, analyst_audit TO hc_api;
GRANT INSERT ON analyst_audit TO hc_api;

-- Hand the audit to its owner: the migrating role joins it just long enough to do so (PostgreSQL requires
-- membership of the new owner), then leaves it, so that afterwards not even the migrating role can alter it;
-- it keeps the right to read it.
DO $$
BEGIN
    IF (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'analyst_audit')
        <> 'hc_audit_owner'
    THEN
        IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('GRANT hc_audit_owner TO %I', current_user);
        END IF;
        -- An owner needs CREATE on the table's schema; hc_audit_owner cannot log in to use it otherwise.
        GRANT CREATE ON SCHEMA public TO hc_audit_owner;
        ALTER TABLE analyst_audit OWNER TO hc_audit_owner;
        -- Administrators read the audit (`healthcode analysts audit`); they cannot change it.
        EXECUTE format('GRANT SELECT ON analyst_audit TO %I', current_user);
        IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('REVOKE hc_audit_owner FROM %I', current_user);
        END IF;
    END IF;
END
$$;
