-- HealthCode schema, version 18: operational facts for the operators' dashboard, kept by the projector as it
-- goes, so that reading them costs a few small rows and never a scan of every person:
--
--   1. the code census: how many current codes there are per area and colour (code_census), and samples of
--      it over time (code_census_sample: totals every minute; code_census_area_sample: per area every hour);
--   2. publisher feeds: per publisher, events archived per minute and when its latest event was archived
--      (publisher_ingest, publisher_feed);
--   3. projector reports: each running projector's `/health` status, upserted every few seconds
--      (projector_report).
--
-- Shards. A counter row written by every projector transaction would make concurrent transactions wait on it.
-- So the counters are kept per shard and read as the sum over shards: a batch adds to the rows of its Kafka
-- partition (shard = partition, >= 0; only the partition's owner writes them, one transaction at a time), a
-- transaction of no partition (the re-evaluator, a dead-letter replay) to one of 16 shared shards picked by its
-- connection (-2 - pg_backend_pid() % 16: concurrent ones rarely share one, and then only wait, in a fixed
-- order), a recount (below) to shard -1. A single shard's count may be negative (it took away codes another
-- shard counted); only the sums mean anything.

-- The district (or whatever area code the events name) each code was counted in: the person's last known area
-- (`PersonState.lastKnownArea`: the latest journey's destination or declared location) when the code was
-- written; null when unknown. Stored with the code so that a rewrite moves the count from exactly where it was.
-- Codes written before this migration have none until they are written again (any event, a due code, a
-- designation) or a rebuild recounts them.
ALTER TABLE person_code ADD COLUMN area_code integer;

-- Current codes per area, colour and shard. `ProjectionTransaction.saveCodes` keeps it in the same statement
-- that writes the codes: it takes one from (stored area, stored colour) and adds one to (new area, new colour)
-- for every code written (a new person only adds).
CREATE TABLE code_census (
    area_code integer,
    status    text    NOT NULL CHECK (status IN ('green', 'yellow', 'red')),
    shard     integer NOT NULL,
    codes     bigint  NOT NULL,
    CONSTRAINT code_census_key UNIQUE NULLS NOT DISTINCT (area_code, status, shard)
);

-- Counts the census anew from person_code (every row in shard -1). The caller holds person_code against
-- writers: the rebuild's switch does (the renamed tables are the fresh ones by then), and so must a rollback
-- to the `*_previous` tables (README "Rebuilding the projection": rename, then `SELECT
-- hc_recount_code_census()` in the same transaction). The lock below only waits for writers in flight.
CREATE FUNCTION hc_recount_code_census() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE person_code IN SHARE MODE;
    DELETE FROM code_census;
    INSERT INTO code_census (area_code, status, shard, codes)
    SELECT area_code, status, -1, count(*) FROM person_code GROUP BY area_code, status;
END
$$;

-- Codes deleted or truncated by hand (the projector never deletes one) leave the census too. Rebuilds copy
-- person_code's triggers onto their fresh table: there, until the switch renames it, they count nothing.
CREATE FUNCTION hc_census_deleted_codes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'person_code' THEN
        INSERT INTO code_census (area_code, status, shard, codes)
        SELECT area_code, status, -1, -count(*) FROM deleted GROUP BY area_code, status
        ORDER BY area_code, status
        ON CONFLICT ON CONSTRAINT code_census_key DO UPDATE SET codes = code_census.codes + excluded.codes;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION hc_census_truncated_codes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'person_code' THEN
        DELETE FROM code_census;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER person_code_census_deleted AFTER DELETE ON person_code
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION hc_census_deleted_codes();
CREATE TRIGGER person_code_census_truncated AFTER TRUNCATE ON person_code
    FOR EACH STATEMENT EXECUTE FUNCTION hc_census_truncated_codes();

SELECT hc_recount_code_census();

-- The census over time: the totals once a minute (one row per minute; the first projector to sample a minute
-- writes it, the others find it there), and per area once an hour (the first sample of each hour), so that the
-- per-area history stays small with thousands of districts. Samples older than 30 days are deleted when a
-- sample is taken.
CREATE TABLE code_census_sample (
    sampled_at timestamptz NOT NULL PRIMARY KEY,
    green      bigint      NOT NULL,
    yellow     bigint      NOT NULL,
    red        bigint      NOT NULL
);

CREATE TABLE code_census_area_sample (
    sampled_at timestamptz NOT NULL,
    area_code  integer,
    green      bigint      NOT NULL,
    yellow     bigint      NOT NULL,
    red        bigint      NOT NULL,
    CONSTRAINT code_census_area_sample_key UNIQUE NULLS NOT DISTINCT (sampled_at, area_code)
);

-- Events each publisher (the events' `source`, as `publisher.publisher_id`) had newly archived, per minute of
-- archiving and shard: one upsert per projector batch, from the batch's events grouped in memory. A retry of
-- an event already archived counts nothing. Kept 7 days (deleted when a census sample is taken).
CREATE TABLE publisher_ingest (
    minute           timestamptz NOT NULL,
    publisher        text        COLLATE "C" NOT NULL,
    shard            integer     NOT NULL,
    events           bigint      NOT NULL,
    last_archived_at timestamptz NOT NULL,
    PRIMARY KEY (minute, publisher, shard)
);

-- Every publisher ever archived, per shard: all its events and when the latest was archived (its freshness,
-- also for publishers silent for longer than publisher_ingest keeps). Written in the same statement.
CREATE TABLE publisher_feed (
    publisher        text        COLLATE "C" NOT NULL,
    shard            integer     NOT NULL,
    events           bigint      NOT NULL,
    last_archived_at timestamptz NOT NULL,
    PRIMARY KEY (publisher, shard)
);

-- Each running projector's status as its `/health` reports it (`ProjectorProgress.status`), upserted every
-- few seconds by the member (`<group>@<host>:<pid>`); `reported_at` is the projector's clock when it took the
-- status. Reports older than a day are deleted when a census sample is taken: a member that stopped shows as
-- stale (an old `reported_at`) until then.
CREATE TABLE projector_report (
    member                     text             NOT NULL PRIMARY KEY,
    reported_at                timestamptz      NOT NULL,
    state                      text             NOT NULL,
    lag                        bigint           NOT NULL,
    seconds_since_last_commit  double precision,
    assigned_partitions        integer          NOT NULL,
    healthy                    boolean          NOT NULL
);

-- The projector keeps the facts; the query API (the console's dashboard) reads them.
GRANT SELECT, INSERT, UPDATE, DELETE ON code_census, code_census_sample, code_census_area_sample, publisher_ingest,
    publisher_feed, projector_report TO hc_projector;
GRANT SELECT ON code_census, code_census_sample, code_census_area_sample, publisher_ingest, publisher_feed,
    projector_report TO hc_api;
