-- Re-evaluation of materialised codes when time or designations change, not only when a person's
-- own events arrive.

-- The archive is read per person in time order (explanations, exports, replays).
CREATE INDEX event_archive_subject_time ON event_archive (subject, time);
-- Designations are looked up by area.
CREATE INDEX area_event_archive_area ON area_event_archive (area_code, time);

-- Where and when people were (POLICY.md §3.1 presences), so that a designation that arrives later
-- for an area re-evaluates exactly the people who were there. Retracted events leave their rows:
-- re-evaluating a person too many is harmless, missing one is not.
CREATE TABLE person_presence (
    subject   text        NOT NULL,
    area_code integer     NOT NULL,
    at        timestamptz NOT NULL,
    source    text        NOT NULL,
    event_id  text        NOT NULL,
    PRIMARY KEY (subject, source, event_id, area_code, at)
);
CREATE INDEX person_presence_area ON person_presence (area_code, at, subject);

-- Designation changes whose people are still to be re-evaluated (an outbox written in the same
-- transaction as the designation, worked off in chunks by the projectors' re-evaluator, so that a
-- city-wide designation neither bloats one transaction nor is lost by a crash).
-- Areas are ranges of codes: a province covers PP0000..PP9999, a city PPCC00..PPCC99.
CREATE TABLE area_reevaluations (
    job_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    area_low       integer     NOT NULL,
    area_high      integer     NOT NULL,
    window_start   timestamptz,
    window_end     timestamptz,
    trigger_source text        NOT NULL,
    trigger_id     text        NOT NULL,
    next_subject   text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
