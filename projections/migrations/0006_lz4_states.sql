-- Person states and decisions larger than PostgreSQL's TOAST threshold (about 2 kB: a few dozen
-- events) are compressed with lz4 instead of pglz. pglz took about 3% of PostgreSQL's time in
-- `bench projector`; lz4 compresses several times faster and decompresses faster for the API's
-- reads. Only values written from now on change; old ones stay readable as they are. A server
-- built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE person_state ALTER COLUMN state SET COMPRESSION lz4;
    ALTER TABLE person_code ALTER COLUMN decision SET COMPRESSION lz4;
    ALTER TABLE decision_log ALTER COLUMN decision SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this server: states and decisions stay compressed with pglz';
END
$$;
