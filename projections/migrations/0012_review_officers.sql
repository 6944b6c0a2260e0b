-- Review overrides need named officers and a second officer for bulk; client assertions are used once.
--
-- An `hc.review.v1` names the officer who decided it. The officer must be registered under the review
-- office (the publisher that is the event's source). Each office and each officer may apply a quota of
-- overrides per clock hour on their own (the gateway's configuration); an override beyond it is held
-- here, already pseudonymised, until another registered officer of the same office approves or rejects
-- it. Every registration change and every decision is appended to `review_audit` (insert-only).
--
-- Who uses what: the gateway reads `review_officer`, reads and writes `review_override_count`, inserts
-- into `held_review` and marks approved ones published, reads `review_audit` (metrics) and uses
-- `client_assertion_use`. Operators (`healthcode reviews …`) write `review_officer`, decide
-- `held_review` rows and append to `review_audit`. The projector and the query API use none of them.

-- Officers of each review office; a removed officer keeps its row (`removed_at`) for the audit.
CREATE TABLE review_officer (
    office_id     text        NOT NULL REFERENCES publisher (publisher_id),
    officer_id    text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz,
    PRIMARY KEY (office_id, officer_id)
);

-- Overrides applied without a second officer, per office, officer and clock hour (UTC): the quotas.
-- Shared by every gateway instance; a transaction-scoped advisory lock per office serialises admissions.
CREATE TABLE review_override_count (
    office_id   text        NOT NULL,
    officer_id  text        NOT NULL,
    hour        timestamptz NOT NULL,
    applied     integer     NOT NULL CHECK (applied >= 0),
    PRIMARY KEY (office_id, hour, officer_id)
);

-- Overrides held over a quota. `event` is the canonical, pseudonymised event as the gateway would have
-- appended it (never a raw identifier). Approved ones are appended to the log with the approval and then
-- marked `published_at`; an approved row without it is appended again by the next approval or gateway.
CREATE TABLE held_review (
    held_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    officer_id   text        NOT NULL,
    subject      text        COLLATE "C" NOT NULL,
    event        text        NOT NULL,
    held_at      timestamptz NOT NULL DEFAULT now(),
    status       text        NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'approved', 'rejected')),
    decided_by   text,
    decided_at   timestamptz,
    published_at timestamptz,
    UNIQUE (source, event_id),
    CHECK ((status = 'held') = (decided_by IS NULL)),
    CHECK ((status = 'held') = (decided_at IS NULL)),
    CHECK (published_at IS NULL OR status = 'approved')
);
CREATE INDEX held_review_subject ON held_review (subject);
CREATE INDEX held_review_waiting ON held_review (held_id) WHERE status = 'held';
CREATE INDEX held_review_unpublished ON held_review (held_id) WHERE status = 'approved' AND published_at IS NULL;

-- Who did what to officers and held overrides, when; `db_role` is the PostgreSQL role that did it.
-- Insert-only, like analyst_audit.
CREATE TABLE review_audit (
    audit_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    office_id  text        NOT NULL,
    action     text        NOT NULL CHECK (action IN ('officer-added', 'officer-removed', 'approved', 'rejected')),
    officer_id text        NOT NULL,
    held_id    bigint,
    held_officer_id text,
    db_role    text        NOT NULL DEFAULT session_user,
    at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((action IN ('approved', 'rejected')) = (held_id IS NOT NULL))
);
CREATE TRIGGER review_audit_insert_only BEFORE UPDATE OR DELETE ON review_audit
    FOR EACH ROW EXECUTE FUNCTION hc_refuse_change();
CREATE TRIGGER review_audit_no_truncate BEFORE TRUNCATE ON review_audit
    FOR EACH STATEMENT EXECUTE FUNCTION hc_refuse_change();

-- JWT client assertions already used (`jti` per issuer), kept until they expire: a replay is refused by
-- every gateway instance. The gateway deletes expired rows as it refreshes its publishers.
CREATE TABLE client_assertion_use (
    issuer     text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX client_assertion_use_expiry ON client_assertion_use (expires_at);
