import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeLocalServers
import HealthCodePostgres
import Logging
import NIOCore
import PostgresNIO

/// `healthcode bench impact`: how long the blast radius of a rule set takes for a population, against the
/// floor of reading every state once. A population (one million people by default, each folded from the
/// projector benchmark's mixed histories, and its designations) is written to PostgreSQL on private servers;
/// then everyone is evaluated under the reference rule set and under one with 28-day windows
/// (``PopulationImpact``, one worker per core), and, as the baseline in the same run, every state is read
/// once on one connection without being decoded.
public struct ImpactBenchmark: Sendable {
    /// What to run.
    public struct Options: Sendable {
        /// People with a state. Default 1 000 000.
        public var people = 1_000_000
        /// Events folded into each state. Default 4.
        public var eventsPerPerson = 4
        /// Evaluations at once. Default: one per core.
        public var workers = ProcessInfo.processInfo.activeProcessorCount
        /// The repository root (scripts/infra.sh, projections/).
        public var root: URL

        public init(root: URL) {
            self.root = root
        }
    }

    /// The measurements.
    public struct Result: Sendable {
        public var people: Int
        public var workers: Int
        public var impact: Duration
        public var read: Duration
        public var changed: Int
        public var turningRed: Int

        /// The closing line.
        public var summary: String {
            let impactSeconds = seconds(impact)
            let readSeconds = seconds(read)
            return String(
                format: "bench impact: %d people in %.2f s (%.0f people/s, %d workers; %d change, %d turn red), "
                    + "read-only %.2f s (%.0f people/s), ratio %.2f",
                people,
                impactSeconds,
                Double(people) / impactSeconds,
                workers,
                changed,
                turningRed,
                readSeconds,
                Double(people) / readSeconds,
                impactSeconds / readSeconds
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
        try await ScratchServers.with(root: options.root) { servers in try await measure(on: servers) }
    }

    private func measure(on servers: ScratchServers) async throws -> Result {
        try await Backbone.withPostgres(
            servers.postgresConfiguration(database: "healthcode", connections: 1),
            logger: logger
        ) {
            _ = try await $0.query("CREATE DATABASE impact", logger: logger)
        }
        let reference = try [UInt8](
            Data(contentsOf: options.root.appendingPathComponent("projections/rules/reference-v1.json"))
        )
        let longer = Array(
            String(decoding: reference, as: UTF8.self).replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"").utf8
        )
        let migrations = try SchemaMigrator.migrations(
            in: options.root.appendingPathComponent("projections/migrations")
        )
        return try await Backbone.withPostgres(
            servers.postgresConfiguration(database: "impact", connections: options.workers + 2),
            logger: logger
        ) { client in
            try await SchemaMigrator(client: client, logger: logger).migrate(migrations)
            let now = Instant.now()
            let workload = ProjectorWorkload(
                people: options.people,
                eventsPerPerson: options.eventsPerPerson,
                anchor: now
            )
            try await populate(client, workload: workload)
            _ = try await client.query("VACUUM ANALYZE person_state", logger: logger)

            let change = ProposedChange.ruleSet(file: longer, effectiveFrom: now)
            let comparison = try await Backbone.comparison(
                of: change,
                at: now,
                postgres: client,
                configured: try RuleSet.decode(reference),
                logger: logger
            )
            // Baseline first, so that both read from a warm cache.
            var started = ContinuousClock.now
            var read = 0
            let rows = try await client.query("SELECT subject, state::text FROM person_state", logger: logger)
            for try await _ in rows.decode((String, String).self) { read += 1 }
            let readTime = ContinuousClock.now - started
            guard read == options.people else {
                throw ScratchServerError(detail: "read \(read) states of \(options.people)")
            }
            logger.info("evaluating", metadata: ["people": "\(options.people)", "workers": "\(options.workers)"])
            started = ContinuousClock.now
            let report = try await PopulationImpact(postgres: client, logger: logger)
                .report(comparison, workers: options.workers)
            let impactTime = ContinuousClock.now - started
            guard report.people == options.people else {
                throw ScratchServerError(detail: "evaluated \(report.people) people of \(options.people)")
            }
            return Result(
                people: options.people,
                workers: options.workers,
                impact: impactTime,
                read: readTime,
                changed: report.changed,
                turningRed: report.turningRed
            )
        }
    }

    /// Each person's events folded and written with COPY, in chunks; the designations archived.
    private func populate(_ client: PostgresClient, workload: ProjectorWorkload) async throws {
        logger.info("writing states", metadata: ["people": "\(workload.people)"])
        for (offset, designation) in workload.designations(midway: false).enumerated() {
            let body = String(decoding: designation.jsonBytes(), as: UTF8.self)
            try await client.query(
                """
                INSERT INTO area_event_archive (source, event_id, area_code, type, time, recorded_time, body,
                                                kafka_topic, kafka_partition, kafka_offset)
                VALUES (\(designation.source), \(designation.id), \(designation.subject), \(designation.type.rawValue),
                        hc_instant(\(designation.time.microsecondsSinceEpoch)),
                        hc_instant(\(designation.effectiveRecordedTime.microsecondsSinceEpoch)), \(body)::jsonb,
                        'bench.impact', 0, \(Int64(offset)))
                """,
                logger: logger
            )
        }
        let subjects = workload.subjects
        try await client.withConnection { connection in
            try await connection.copyFrom(
                table: "person_state",
                columns: ["subject", "state", "event_count"],
                logger: logger
            ) {
                writer in
                var buffer = ByteBuffer()
                for (index, subject) in subjects.enumerated() {
                    var state = PersonState()
                    let events = workload.events(ofPerson: index, subject: subject)
                    for event in events { state.apply(event) }
                    buffer.writeString(subject)
                    buffer.writeInteger(UInt8(ascii: "\t"))
                    // JSON holds no raw tab or newline; its backslashes are doubled for COPY's text format.
                    buffer.writeString(
                        String(decoding: state.storedJSON(), as: UTF8.self).replacingOccurrences(of: "\\", with: "\\\\")
                    )
                    buffer.writeString("\t\(events.count)\n")
                    if buffer.readableBytes >= 1 << 20 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
            }
        }
    }
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
