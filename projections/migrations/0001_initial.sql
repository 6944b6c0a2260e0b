-- HealthCode projection schema, version 1.
--
-- Every per-person table has the person pseudonym (`subject`) as the first column of its primary
-- key, so that it can be distributed by `subject` with Citus (projections/citus/distribute.sql).
-- Area events are few and read by every evaluation: they form a reference table.
-- Nothing here stores a raw person identifier: the gateway replaced it by its pseudonym.

-- Append-only archive of every accepted person event, exactly as it was on Kafka.
-- (subject, source, event_id) is the idempotency key: a publisher retry that lands on Kafka at a
-- new offset inserts nothing. A given (source, id) always has the same pseudonymised subject,
-- because the subject is part of what the publisher re-sends.
CREATE TABLE event_archive (
    subject         text        NOT NULL,
    source          text        NOT NULL,
    event_id        text        NOT NULL,
    type            text        NOT NULL,
    time            timestamptz NOT NULL,
    recorded_time   timestamptz NOT NULL,
    body            jsonb       NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, source, event_id)
);

-- Append-only archive of risk-area designations and their retractions (subject = area code).
-- `seq` orders them for incremental reads by every projector and API instance.
CREATE TABLE area_event_archive (
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    source          text        NOT NULL,
    event_id        text        NOT NULL,
    area_code       text        NOT NULL,
    type            text        NOT NULL,
    time            timestamptz NOT NULL,
    recorded_time   timestamptz NOT NULL,
    body            jsonb       NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
CREATE UNIQUE INDEX area_event_archive_seq ON area_event_archive (seq);

-- The fold of a person's events (HealthCodeCore.PersonState), the input of every evaluation.
CREATE TABLE person_state (
    subject     text        NOT NULL PRIMARY KEY,
    state       jsonb       NOT NULL,
    event_count integer     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The materialised code of each person: the policy evaluated at `evaluated_at`.
CREATE TABLE person_code (
    subject       text        NOT NULL PRIMARY KEY,
    status        text        NOT NULL CHECK (status IN ('green', 'yellow', 'red')),
    valid_until   timestamptz,
    decision      jsonb       NOT NULL,
    rule_set_hash text        NOT NULL,
    evaluated_at  timestamptz NOT NULL
);
CREATE INDEX person_code_due ON person_code (valid_until) WHERE valid_until IS NOT NULL;

-- Every change of a materialised code, for replay and explanation.
CREATE TABLE decision_log (
    subject        text        NOT NULL,
    decision_id    bigint      GENERATED ALWAYS AS IDENTITY,
    decided_at     timestamptz NOT NULL,
    old_status     text,
    new_status     text        NOT NULL,
    valid_until    timestamptz,
    rule_set_hash  text        NOT NULL,
    trigger_source text,
    trigger_id     text,
    decision       jsonb       NOT NULL,
    PRIMARY KEY (subject, decision_id)
);

-- Consumer positions, written in the same transaction as the effects (exactly-once).
-- `next_offset` is the next Kafka offset to apply; it only moves by compare-and-set.
CREATE TABLE consumer_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Messages that could not be decoded or applied, with their raw bytes, for repair and replay.
CREATE TABLE dead_letters (
    dead_letter_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    message_key     bytea,
    message_value   bytea       NOT NULL,
    reason          text        NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- Exact conversions between timestamptz and the core's Instant (microseconds since the epoch).
-- The projector binds instants as bigint arrays; -9223372036854775808 stands for NULL there.
CREATE FUNCTION hc_instant(microseconds bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN microseconds = -9223372036854775808 THEN NULL
                ELSE timestamptz 'epoch' + microseconds * interval '1 microsecond' END;

CREATE FUNCTION hc_micros(instant timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (extract(epoch FROM instant) * 1000000)::bigint;
