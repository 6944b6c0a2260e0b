-- Person states and decisions are stored as `json` (the text as the projector wrote it, checked to
-- be JSON) instead of `jsonb`. Nothing queries inside them in SQL: the projector and the API read
-- them whole and parse them themselves. `jsonb` made PostgreSQL build, sort and re-encode a tree
-- for every write and re-serialise it for every read: in `bench projector` its input function took
-- about a sixth of PostgreSQL's time, most of it for states. Archived event bodies stay `jsonb`:
-- analysts query them, and the COPY ceiling of `bench projector` writes the same type.
ALTER TABLE person_state ALTER COLUMN state TYPE json USING state::json;
ALTER TABLE person_code ALTER COLUMN decision TYPE json USING decision::json;
ALTER TABLE decision_log ALTER COLUMN decision TYPE json USING decision::json;

-- A changed type keeps no compression setting: lz4 again where the server has it (see 0006).
DO $$
BEGIN
    ALTER TABLE person_state ALTER COLUMN state SET COMPRESSION lz4;
    ALTER TABLE person_code ALTER COLUMN decision SET COMPRESSION lz4;
    ALTER TABLE decision_log ALTER COLUMN decision SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this server: states and decisions stay compressed with pglz';
END
$$;
