-- Kafka-native publishing (issue 23): a publisher may produce its events to an inbound topic of its own;
-- the ingest processor applies the gateway's rules to them and writes the valid ones to the events topic.
--
-- publisher.inbound_topic   the publisher's inbound topic (NULL: HTTP only); its rejects topic is named alike.
-- inbound_checkpoint        the processor's positions in each inbound partition (the `checkpointed` delivery,
--                           the default): every message before next_offset has its output (an event or a
--                           reject) acknowledged by the broker; output_ends holds, per output partition, an
--                           offset at or before which any later output lies, where a restarted processor looks
--                           for outputs it wrote but did not checkpoint (docs/INBOUND.md).
ALTER TABLE publisher ADD COLUMN inbound_topic text UNIQUE
    CHECK (inbound_topic ~ '^[A-Za-z0-9._-]{1,200}$');

CREATE TABLE inbound_checkpoint (
    topic        text        NOT NULL,
    partition    int4        NOT NULL CHECK (partition >= 0),
    next_offset  int8        NOT NULL CHECK (next_offset >= 0),
    output_ends  jsonb       NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- The processor logs in as the gateway's role: it applies the gateway's rules with the gateway's reads.
GRANT SELECT, INSERT, UPDATE, DELETE ON inbound_checkpoint TO hc_gateway;
