-- HealthCode schema, version 16: blue/green rebuilds of the projection (issue 19, `healthcode rebuild`).
--
-- A rebuild folds the archives (event_archive, area_event_archive: the log of record) into fresh tables
-- (person_state_rebuild, person_code_rebuild, person_presence_rebuild, created by the rebuild itself LIKE the
-- live ones) while the live projection goes on, catches up with what the projector archived meanwhile, verifies,
-- and switches by renaming in one transaction; the tables it replaced stay as *_previous until
-- `healthcode rebuild drop-previous`. These tables record how far it got, so that a rebuild that stopped
-- (a crash, Ctrl-C) resumes where its last committed chunk ended.

-- One row per rebuild. `evaluated_at` is the instant every code of the bulk build is evaluated at (kept across a
-- resume, so a resumed build decides as the first attempt did); `rule_set` is the stored rule set named by
-- `--rules` (null: the rule sets in force, as activated); the `position_*` arrays are the per-partition positions
-- (consumer_offsets, committed with the archive) up to which the fresh tables hold the archive, and
-- `area_seq` the last area event they saw: what is archived after them is the tail a catch-up re-folds.
-- `positions_at` is when those positions were read: the tail is looked for among rows archived from an hour
-- before it on (a projector transaction is far shorter; see the BRIN index below).
CREATE TABLE rebuild_progress (
    rebuild_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phase               text        NOT NULL
                                    CHECK (phase IN ('building', 'catching-up', 'switched', 'dropped', 'abandoned')),
    evaluated_at        timestamptz NOT NULL,
    rule_set            smallint,
    activated_by        text,
    position_topics     text[]      NOT NULL,
    position_partitions integer[]   NOT NULL,
    position_offsets    bigint[]    NOT NULL,
    positions_at        timestamptz NOT NULL,
    area_seq            bigint      NOT NULL,
    total_events        bigint      NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    switched_at         timestamptz
);

-- The bulk build's ranges of pseudonyms (in byte order), worked off in parallel: `next_subject` is the last
-- pseudonym whose rows are committed to the fresh tables (null: none yet), written in the same transaction as
-- those rows, so a resumed range continues right after it and nothing is written twice or lost.
CREATE TABLE rebuild_range (
    rebuild_id   bigint  NOT NULL,
    low          text    COLLATE "C" NOT NULL,
    high         text    COLLATE "C",
    next_subject text    COLLATE "C",
    done         boolean NOT NULL DEFAULT false,
    events       bigint  NOT NULL DEFAULT 0,
    people       bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (rebuild_id, low)
);

-- The catch-up looks for rows archived after the rebuild's positions. A BRIN index on the arrival instant
-- narrows that to the last pages of the append-only archive for almost no cost per insert (a B-tree on the
-- Kafka position would cost the projector an index write per event).
CREATE INDEX event_archive_archived_at ON event_archive USING brin (archived_at);
