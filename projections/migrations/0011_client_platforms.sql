-- Client platforms of the query API, and their reads in the audit trail.
--
-- The residents' channel (POST /v1/code-lookups) maps an identifier to a signed code; open to anyone it
-- was an identity oracle (resident identifiers have few enough bits to enumerate). Now only registered
-- platforms may call it, each with its own API key (256 random bits; only its SHA-256 is kept here)
-- and rate limit. A platform is either a residents' app (`resident`: may request signed codes) or a
-- checkpoint reader (`checkpoint`: may read a person's code with its reasons and history, every read
-- audited). Rows are never deleted, so the audit trail can always name a removed platform.
CREATE TABLE client_platform (
    platform_id         text             NOT NULL PRIMARY KEY,
    kind                text             NOT NULL CHECK (kind IN ('resident', 'checkpoint')),
    api_key_sha256      text             NOT NULL UNIQUE,
    -- Its own rate limit; NULL: the API's default for platforms.
    requests_per_second double precision CHECK (requests_per_second > 0),
    burst_requests      integer          CHECK (burst_requests > 0),
    created_at          timestamptz      NOT NULL DEFAULT now(),
    revoked_at          timestamptz,
    CHECK ((requests_per_second IS NULL) = (burst_requests IS NULL))
);

-- Reads by checkpoint platforms go to the same insert-only trail as analysts' reads: each row names
-- exactly one reader, an analyst or a platform.
ALTER TABLE analyst_audit
    ALTER COLUMN analyst_id DROP NOT NULL,
    ADD COLUMN platform_id text,
    ADD CONSTRAINT analyst_audit_one_reader CHECK ((analyst_id IS NULL) <> (platform_id IS NULL));
