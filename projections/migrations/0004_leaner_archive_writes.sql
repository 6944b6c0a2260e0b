-- Fewer index writes per projected event: every archived event paid for two indexes it does not need.

-- Per-person reads of the archive (explanations, exports, replays) go through the primary key,
-- whose first column is the pseudonym; a person's few hundred events are sorted by time in memory.
DROP INDEX event_archive_subject_time;

-- Presences are written once per newly archived event (the archive's key already makes that exactly
-- once), so their primary key guarded nothing; the area index is what re-evaluation reads.
ALTER TABLE person_presence DROP CONSTRAINT person_presence_pkey;
