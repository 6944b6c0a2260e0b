-- Identifiers compare byte by byte. Pseudonyms, publisher ids, event ids and area codes are
-- ASCII identifiers, never words to sort for people; under a linguistic collation (the cluster's
-- default, e.g. C.UTF-8 or en_US.UTF-8) every comparison of the keys and indexes below went
-- through strcoll. With COLLATE "C" it is a memcmp: `bench projector` +7% events/s. For ASCII
-- identifiers the order is the same, so positions kept in text (a re-evaluation's `next_subject`)
-- stay valid. Only the indexes are rebuilt; the rows are not rewritten.
ALTER TABLE event_archive
    ALTER COLUMN subject TYPE text COLLATE "C",
    ALTER COLUMN source TYPE text COLLATE "C",
    ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE area_event_archive
    ALTER COLUMN area_code TYPE text COLLATE "C",
    ALTER COLUMN source TYPE text COLLATE "C",
    ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE person_presence
    ALTER COLUMN subject TYPE text COLLATE "C",
    ALTER COLUMN source TYPE text COLLATE "C",
    ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE person_state ALTER COLUMN subject TYPE text COLLATE "C";
ALTER TABLE person_code ALTER COLUMN subject TYPE text COLLATE "C";
ALTER TABLE decision_log ALTER COLUMN subject TYPE text COLLATE "C";
ALTER TABLE analyst_audit ALTER COLUMN subject TYPE text COLLATE "C";
ALTER TABLE area_reevaluations ALTER COLUMN next_subject TYPE text COLLATE "C";
ALTER TABLE consumer_offsets
    ALTER COLUMN consumer_group TYPE text COLLATE "C",
    ALTER COLUMN topic TYPE text COLLATE "C";
