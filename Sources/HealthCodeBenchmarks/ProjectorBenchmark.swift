import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeKafka
import HealthCodeLocalServers
import HealthCodePostgres
import HealthCodeProjector
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// `healthcode bench projector`: sustained projection throughput into PostgreSQL (fsync on) against
/// the raw PostgreSQL ceiling measured in the same run on the same server (COPY of the same archive
/// rows into an unindexed table), and the projector process's peak resident memory.
public struct ProjectorBenchmark: Sendable {
    /// What to run.
    public struct Options: Sendable {
        /// People in the workload. Default 30 000.
        public var people = 30_000
        /// Events per person (plus a retraction for one in twenty). Default 10.
        public var eventsPerPerson = 10
        /// Partitions of the topic. Default 8.
        public var partitions = 8
        /// Events per projector transaction. Default: the projector's default.
        public var batchSize = ProjectorConfiguration().batchSize
        /// The repository root (scripts/infra.sh, projections/).
        public var root: URL
        /// The `healthcode` binary that runs the projector.
        public var executable: URL

        public init(root: URL, executable: URL) {
            self.root = root
            self.executable = executable
        }
    }

    /// The measurements.
    public struct Result: Sendable {
        public var events: Int
        public var eventsPerSecond: Double
        public var copyRowsPerSecond: Double
        public var peakResidentMegabytes: Double
        /// WAL PostgreSQL wrote while the projector applied the events, per event.
        public var walBytesPerEvent: Double
        /// Bytes of the projection's tables (heap, TOAST and indexes) after the run, per event.
        public var storedBytesPerEvent: Double

        public var ratio: Double { copyRowsPerSecond > 0 ? eventsPerSecond / copyRowsPerSecond : 0 }

        /// The closing line.
        public var summary: String {
            String(
                format: "bench projector: %.0f ev/s, pg-copy %.0f rows/s, ratio %.2f, rss %.0f MB, "
                    + "wal %.0f B/ev, stored %.0f B/ev",
                eventsPerSecond,
                copyRowsPerSecond,
                ratio,
                peakResidentMegabytes,
                walBytesPerEvent,
                storedBytesPerEvent
            )
        }
    }

    private let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    public func run() async throws -> Result {
        try await run(then: { _ in }).projection
    }

    /// Runs the benchmark and, once the projector has stopped and before the COPY ceiling is measured, `then`
    /// on the database it filled (`bench rebuild` rebuilds that projection side by side with these numbers).
    public func run<Then: Sendable>(
        then: (PostgresClient.Configuration) async throws -> Then
    ) async throws -> (projection: Result, then: Then) {
        let servers = try await ScratchServers.start(root: options.root)
        do {
            let result = try await measure(on: servers, then: then)
            await servers.stop()
            return result
        } catch {
            await servers.stop()
            throw error
        }
    }

    private func measure<Then: Sendable>(
        on servers: ScratchServers,
        then: (PostgresClient.Configuration) async throws -> Then
    ) async throws -> (projection: Result, then: Then) {
        let database = "bench"
        var topic = EventTopicConfiguration()
        topic.bootstrapServers = [servers.kafkaBootstrapServers]
        topic.topic = "bench.events"
        topic.partitions = options.partitions
        try await Backbone.withPostgres(
            servers.postgresConfiguration(database: "healthcode", connections: 2),
            logger: logger
        ) {
            _ = try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"), logger: logger)
        }
        let migrations = try SchemaMigrator.migrations(
            in: options.root.appendingPathComponent("projections/migrations")
        )
        let configuration = servers.postgresConfiguration(database: database, connections: 2)
        try await Backbone.withPostgres(configuration, logger: logger) {
            try await Backbone.prepare(topic: topic, postgres: $0, migrations: migrations, logger: logger)
        }

        let workload = ProjectorWorkload(
            people: options.people,
            eventsPerPerson: options.eventsPerPerson,
            anchor: Instant.now()
        )
        let events = workload.allEvents()
        logger.info("publishing", metadata: ["events": "\(events.count)"])
        try await publish(events, topic: topic)

        let projector = ProjectorProcess(
            executable: options.executable,
            settings: [
                "HC_KAFKA_BOOTSTRAP": servers.kafkaBootstrapServers,
                "HC_TOPIC": topic.topic,
                "HC_PROJECTOR_BATCH_SIZE": "\(options.batchSize)",
                "HC_PG_PORT": "\(servers.postgresPort)",
                "HC_PG_DATABASE": database,
                "HC_RULES": options.root.appendingPathComponent("projections/rules/reference-v1.json").path,
            ]
        )
        let walBefore = try await Backbone.withPostgres(configuration, logger: logger) { try await walPosition($0) }
        try projector.start()
        // Sustained rate: from the first committed batch (after the group join) to the last.
        let peakMemory = PeakMemory()
        let measured: (Duration, Int)
        do {
            measured = try await Backbone.withPostgres(configuration, logger: logger) { client in
                var first: (ContinuousClock.Instant, Int)?
                while true {
                    let applied = try await appliedCount(client)
                    peakMemory.observe(projector.peakResidentBytes() ?? 0)
                    if first == nil && applied > 0 { first = (.now, applied) }
                    if applied >= events.count, let first {
                        return (ContinuousClock.now - first.0, applied - first.1)
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        } catch {
            await projector.kill()
            throw error
        }
        let (elapsed, applied) = measured
        let peak = peakMemory.value
        await projector.stop()
        let (walAfter, stored) = try await Backbone.withPostgres(configuration, logger: logger) {
            (try await walPosition($0), try await projectionBytes($0))
        }
        let after = try await then(configuration)
        let copyRate = try await copyCeiling(configuration)
        let result = Result(
            events: events.count,
            eventsPerSecond: Double(applied) / seconds(elapsed),
            copyRowsPerSecond: copyRate,
            peakResidentMegabytes: Double(peak) / 1_048_576,
            walBytesPerEvent: Double(walAfter - walBefore) / Double(events.count),
            storedBytesPerEvent: Double(stored) / Double(events.count)
        )
        return (result, after)
    }

    /// The server's current WAL insert position, in bytes since the start of the WAL.
    private func walPosition(_ client: PostgresClient) async throws -> Int64 {
        let rows = try await client.query("SELECT (pg_current_wal_lsn() - '0/0')::int8", logger: logger)
        for try await position in rows.decode(Int64.self) { return position }
        return 0
    }

    /// Total size (heap, TOAST, indexes) of every table the projector writes; logs each table's.
    private func projectionBytes(_ client: PostgresClient) async throws -> Int64 {
        let rows = try await client.query(
            """
            SELECT c.relname::text, pg_total_relation_size(c.oid)::int8
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY(\(Self.projectionTables))
            ORDER BY 2 DESC
            """,
            logger: logger
        )
        var total: Int64 = 0
        for try await (table, bytes) in rows.decode((String, Int64).self) {
            logger.info("stored", metadata: ["table": "\(table)", "bytes": "\(bytes)"])
            total += bytes
        }
        return total
    }

    /// The tables the projector writes (the archives and everything derived from them).
    static let projectionTables = [
        "event_archive", "area_event_archive", "person_state", "person_code", "decision_log", "person_presence",
        "area_reevaluations", "consumer_offsets", "dead_letters",
    ]

    private func publish(_ events: [CloudEvent], topic: EventTopicConfiguration) async throws {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: topic.bootstrapServers),
            logger: logger
        )
        let group = ServiceGroup(services: [producer], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for start in stride(from: 0, to: events.count, by: 10_000) {
                let messages = events[start..<min(start + 10_000, events.count)].map {
                    KafkaOutgoingMessage(topic: topic.topic, key: Array($0.subject.utf8), value: $0.jsonBytes())
                }
                _ = try await producer.send(messages)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    private func appliedCount(_ client: PostgresClient) async throws -> Int {
        let rows = try await client.query(
            "SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets",
            logger: logger
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Rows per second of `COPY FROM` of the archived rows into a table with no index (fsync on).
    private func copyCeiling(_ configuration: PostgresClient.Configuration) async throws -> Double {
        try await Backbone.withPostgres(configuration, logger: logger) { client in
            var buffer = ByteBuffer()
            var rows = 0
            let archived = try await client.query(
                """
                SELECT subject || E'\\t' || source || E'\\t' || event_id || E'\\t' || type || E'\\t' || time::text
                       || E'\\t' || coalesce(recorded_time::text, E'\\\\N') || E'\\t'
                       || replace(replace(body::text, E'\\\\', E'\\\\\\\\'), E'\\t', E'\\\\t')
                       || E'\\t' || kafka_topic || E'\\t' || kafka_partition || E'\\t' || kafka_offset
                FROM event_archive
                """,
                logger: logger
            )
            for try await line in archived.decode(String.self) {
                buffer.writeString(line)
                buffer.writeInteger(UInt8(ascii: "\n"))
                rows += 1
            }
            // The archive's own columns, types and defaults, without its key or any index.
            try await client.query(
                "CREATE TABLE copy_ceiling (LIKE event_archive INCLUDING DEFAULTS)",
                logger: logger
            )
            let columns = [
                "subject", "source", "event_id", "type", "time", "recorded_time", "body", "kafka_topic",
                "kafka_partition", "kafka_offset",
            ]
            let started = ContinuousClock.now
            try await client.withConnection { connection in
                try await connection.copyFrom(table: "copy_ceiling", columns: columns, logger: logger) { writer in
                    var chunk = buffer
                    while chunk.readableBytes > 0 {
                        let slice = chunk.readSlice(length: min(1 << 20, chunk.readableBytes))!
                        try await writer.write(slice)
                    }
                }
            }
            return Double(rows) / seconds(ContinuousClock.now - started)
        }
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// The largest value observed.
final class PeakMemory: Sendable {
    private let peak = Mutex(0)
    var value: Int { peak.withLock { $0 } }
    func observe(_ bytes: Int) { peak.withLock { $0 = max($0, bytes) } }
}
