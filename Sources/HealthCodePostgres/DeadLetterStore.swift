import HealthCodeCore
import Logging
import PostgresNIO

// Dead letters (table `dead_letters`): messages that could not be decoded or applied, kept with their
// reason for listing and replay.
extension ProjectionStore {
    /// Dead letters in arrival order; replayed ones only with `includeReplayed`.
    public func deadLetters(includeReplayed: Bool, limit: Int) async throws -> [StoredDeadLetter] {
        let rows = try await client.query(
            """
            SELECT dead_letter_id, kafka_topic, kafka_partition, kafka_offset, message_key, message_value, reason,
                   hc_micros(failed_at), hc_micros(replayed_at)
            FROM dead_letters WHERE \(includeReplayed) OR replayed_at IS NULL
            ORDER BY dead_letter_id LIMIT \(Int64(limit))
            """,
            logger: logger
        )
        var letters: [StoredDeadLetter] = []
        for try await (id, topic, partition, offset, key, value, reason, failed, replayed) in rows.decode(
            (Int64, String, Int32, Int64, ByteBuffer?, ByteBuffer, String, Int64, Int64?).self
        ) {
            letters.append(
                StoredDeadLetter(
                    id: id,
                    letter: DeadLetter(
                        topic: topic,
                        partition: partition,
                        offset: offset,
                        key: key.map { Array($0.readableBytesView) },
                        value: Array(value.readableBytesView),
                        reason: reason
                    ),
                    failedAt: Instant(microsecondsSinceEpoch: failed),
                    replayedAt: replayed.map(Instant.init(microsecondsSinceEpoch:))
                )
            )
        }
        return letters
    }
}

extension PostgresProjectionTransaction {
    /// Marks a dead letter as replayed (it was applied, or found already applied).
    public func markReplayed(_ id: Int64) async throws {
        try await connection.query(
            "UPDATE dead_letters SET replayed_at = now() WHERE dead_letter_id = \(id)",
            logger: logger
        )
    }

    /// Records messages that could not be decoded or applied; a message already recorded is kept as is.
    public func recordDeadLetters(_ letters: [DeadLetter]) async throws {
        for letter in letters {
            let key = letter.key.map { ByteBuffer(bytes: $0) }
            let value = ByteBuffer(bytes: letter.value)
            try await connection.query(
                """
                INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_key, message_value, reason)
                VALUES (\(letter.topic), \(letter.partition), \(letter.offset), \(key), \(value), \(letter.reason))
                ON CONFLICT DO NOTHING
                """,
                logger: logger
            )
        }
    }
}
