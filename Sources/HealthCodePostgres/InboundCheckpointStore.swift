import Foundation
import Logging
import PostgresNIO

/// Table `inbound_checkpoint` (migration 0020): the ingest processor's position in each inbound partition and
/// where its later outputs lie (`output_ends`, JSON `{"topic": {"partition": offset}}`).
public struct InboundCheckpointStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// One stored checkpoint.
    public struct Row: Sendable, Hashable {
        public var topic: String
        public var partition: Int32
        public var nextOffset: Int64
        public var outputEnds: [String: [Int32: Int64]]

        public init(topic: String, partition: Int32, nextOffset: Int64, outputEnds: [String: [Int32: Int64]]) {
            self.topic = topic
            self.partition = partition
            self.nextOffset = nextOffset
            self.outputEnds = outputEnds
        }
    }

    /// The checkpoints of the partitions of `topics`.
    public func rows(of topics: [String]) async throws -> [Row] {
        let rows = try await client.query(
            """
            SELECT topic, partition, next_offset, output_ends::text FROM inbound_checkpoint
            WHERE topic = ANY(\(topics))
            """,
            logger: logger
        )
        var result: [Row] = []
        for try await (topic, partition, next, ends) in rows.decode((String, Int32, Int64, String).self) {
            result.append(Row(topic: topic, partition: partition, nextOffset: next, outputEnds: try Self.ends(ends)))
        }
        return result
    }

    /// Upserts `rows` in one statement; a stored checkpoint further on is kept.
    public func save(_ rows: [Row]) async throws {
        guard !rows.isEmpty else { return }
        let ends = try rows.map { row in
            let object = Dictionary(
                uniqueKeysWithValues: row.outputEnds.map { topic, partitions in
                    (topic, Dictionary(uniqueKeysWithValues: partitions.map { ("\($0.key)", $0.value) }))
                }
            )
            return String(decoding: try JSONEncoder().encode(object), as: UTF8.self)
        }
        try await client.query(
            """
            INSERT INTO inbound_checkpoint (topic, partition, next_offset, output_ends, updated_at)
            SELECT t, p, n, e::jsonb, now()
            FROM unnest(\(rows.map(\.topic))::text[], \(rows.map(\.partition))::int4[],
                        \(rows.map(\.nextOffset))::int8[], \(ends)::text[]) AS x(t, p, n, e)
            ON CONFLICT (topic, partition) DO UPDATE
                SET next_offset = excluded.next_offset, output_ends = excluded.output_ends, updated_at = now()
                WHERE inbound_checkpoint.next_offset <= excluded.next_offset
            """,
            logger: logger
        )
    }

    static func ends(_ json: String) throws -> [String: [Int32: Int64]] {
        let object = try JSONDecoder().decode([String: [String: Int64]].self, from: Data(json.utf8))
        return object.mapValues { partitions in
            Dictionary(uniqueKeysWithValues: partitions.compactMap { key, value in Int32(key).map { ($0, value) } })
        }
    }
}
