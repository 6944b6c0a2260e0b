import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeLocalServers
import HealthCodePostgres
import HealthCodeProjector
import Logging
import PostgresNIO

/// `healthcode bench history`: what a long history costs. One person with many journeys (20,000 by default,
/// about one an hour) and 50 people with 10 mixed events each are projected into PostgreSQL on private servers;
/// then, for the long history against a short one: a code lookup at an instant (`?at=`, evaluated on the
/// stored state, p50), an explanation (the API's whole answer) and the projection of one more event (p50 of
/// transactions of one event each).
public struct HistoryBenchmark: Sendable {
    /// What to run.
    public struct Options: Sendable {
        /// Events of the long history. Default 20 000.
        public var longEvents = 20_000
        /// Lookups and one-event projections measured per person. Default 50.
        public var samples = 50
        /// The repository root (scripts/infra.sh, projections/).
        public var root: URL

        public init(root: URL) {
            self.root = root
        }
    }

    /// The measurements, for the long history and a short one (10 events).
    public struct Result: Sendable {
        public var longEvents: Int
        public var lookup: (long: Duration, short: Duration)
        public var explanation: (long: Duration, short: Duration)
        public var explanationBytes: (long: Int, short: Int)
        public var projection: (long: Duration, short: Duration)
        /// Bytes of the long history's stored state.
        public var stateBytes: Int

        /// The closing line.
        public var summary: String {
            String(
                format: "bench history: %d vs 10 events: lookup p50 %.2f vs %.2f ms, explain %.1f vs %.1f ms "
                    + "(%d vs %d B), one more event %.2f vs %.2f ms (ratio %.2f), state %d B",
                longEvents,
                milliseconds(lookup.long),
                milliseconds(lookup.short),
                milliseconds(explanation.long),
                milliseconds(explanation.short),
                explanationBytes.long,
                explanationBytes.short,
                milliseconds(projection.long),
                milliseconds(projection.short),
                milliseconds(projection.long) / max(milliseconds(projection.short), 0.001),
                stateBytes
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

    private static let topic = "bench.history"
    private static let group = "bench-history"
    private static let longSubject = String(repeating: "f", count: 32)

    private func measure(on servers: ScratchServers) async throws -> Result {
        let database = "history"
        try await Backbone.withPostgres(
            servers.postgresConfiguration(database: "healthcode", connections: 1),
            logger: logger
        ) {
            _ = try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"), logger: logger)
        }
        let ruleSet = try RuleSet.decode(
            [UInt8](try Data(contentsOf: options.root.appendingPathComponent("projections/rules/reference-v1.json")))
        )
        let migrations = try SchemaMigrator.migrations(
            in: options.root.appendingPathComponent("projections/migrations")
        )
        return try await Backbone.withPostgres(
            servers.postgresConfiguration(database: database, connections: 4),
            logger: logger
        ) { client in
            try await SchemaMigrator(client: client, logger: logger).migrate(migrations)
            let store = ProjectionStore(client: client, logger: logger)
            let policy = Policy(ruleSet: ruleSet)
            let projection = Projection(
                store: store,
                catalog: RiskAreaCatalog(archive: store, logger: logger),
                rules: RuleSetCatalog(source: store, configured: policy, logger: logger),
                group: Self.group,
                now: Instant.now,
                logger: logger
            )
            var feed = Feed(
                position: try await store.positions(group: Self.group, topic: Self.topic, partitions: [0])[0] ?? 0
            )
            let now = Instant.now()
            let short = ProjectorWorkload(people: 50, eventsPerPerson: 10, anchor: now)
            var events = short.designations(midway: false)
            for (index, subject) in short.subjects.enumerated() {
                events += short.events(ofPerson: index, subject: subject)
            }
            events += (0..<options.longEvents).map { journey(number: $0, count: options.longEvents, now: now) }
            logger.info("projecting", metadata: ["events": "\(events.count)"])
            for start in stride(from: 0, to: events.count, by: 1000) {
                _ = try await feed.project(Array(events[start..<min(start + 1000, events.count)]), with: projection)
            }

            let (queries, explanations) = Backbone.explanations(postgres: client, ruleSet: ruleSet, logger: logger)
            let shortSubject = short.subjects[1]
            var result = Result(
                longEvents: options.longEvents,
                lookup: (.zero, .zero),
                explanation: (.zero, .zero),
                explanationBytes: (0, 0),
                projection: (.zero, .zero),
                stateBytes: 0
            )
            for (subject, isLong) in [(Self.longSubject, true), (shortSubject, false)] {
                var lookups: [Duration] = []
                for sample in 0..<options.samples {
                    let at = Instant.now() - .seconds(60 + sample)
                    let started = ContinuousClock.now
                    _ = try await queries.code(of: subject, at: at, knownAt: nil, now: Instant.now())
                    lookups.append(ContinuousClock.now - started)
                }
                // The first page of the explanation (the API's answer, encoded), p50 of 10.
                var explainDurations: [Duration] = []
                var bytes = 0
                for _ in 0..<10 {
                    let started = ContinuousClock.now
                    let explanation = try await explanations.explain(subject, at: Instant.now(), knownAt: nil)
                    bytes = try JSONEncoder().encode(explanation).count
                    explainDurations.append(ContinuousClock.now - started)
                }
                let explained = median(explainDurations)
                var projections: [Duration] = []
                for sample in 0..<options.samples {
                    let event = CloudEvent(
                        id: "more-\(sample)",
                        source: "urn:hc:publisher:test-transport",
                        subject: subject,
                        time: Instant.now() - .seconds(30),
                        payload: .travel(
                            Travel(
                                mode: .train,
                                from: AreaCode("110101")!,
                                to: AreaCode("420106")!,
                                arrivedAt: Instant.now() - .seconds(10)
                            )
                        )
                    )
                    let started = ContinuousClock.now
                    _ = try await feed.project([event], with: projection)
                    projections.append(ContinuousClock.now - started)
                }
                if isLong {
                    result.lookup.long = median(lookups)
                    result.explanation.long = explained
                    result.explanationBytes.long = bytes
                    result.projection.long = median(projections)
                } else {
                    result.lookup.short = median(lookups)
                    result.explanation.short = explained
                    result.explanationBytes.short = bytes
                    result.projection.short = median(projections)
                }
            }
            let sizes = try await client.query(
                "SELECT octet_length(state::text)::int8 FROM person_state WHERE subject = \(Self.longSubject)",
                logger: logger
            )
            for try await size in sizes.decode(Int64.self) { result.stateBytes = Int(size) }
            return result
        }
    }

    /// Journey `number` of `count`, one about every 52 minutes up to `now`, between a few areas (one of them
    /// designated high-risk by the workload).
    private func journey(number: Int, count: Int, now: Instant) -> CloudEvent {
        let areas = ["110101", "310104", "420106", "440103"]
        let time = now - .seconds(Int64(count - number) * 52 * 60 + 600)
        return CloudEvent(
            id: "journey-\(number)",
            source: "urn:hc:publisher:test-transport",
            subject: Self.longSubject,
            time: time,
            recordedTime: time + .seconds(60),
            payload: .travel(
                Travel(
                    mode: .train,
                    from: AreaCode(areas[number % areas.count])!,
                    to: AreaCode(areas[(number + 1) % areas.count])!,
                    arrivedAt: time + .seconds(1800)
                )
            )
        )
    }

    /// Feeds events to the projection as one partition's consecutive messages.
    private struct Feed {
        var position: Int64

        mutating func project(_ events: [CloudEvent], with projection: Projection) async throws -> ProjectionOutcome {
            let messages = events.enumerated().map { index, event in
                ConsumedMessage(
                    offset: position + Int64(index),
                    key: Array(event.subject.utf8),
                    value: event.jsonBytes()
                )
            }
            let outcome = try await projection.apply(
                PartitionBatch(topic: HistoryBenchmark.topic, partition: 0, messages: messages),
                from: position
            )
            guard case .applied(let next, _, _, _, _) = outcome else {
                throw ScratchServerError(detail: "the history benchmark's partition was taken over")
            }
            position = next
            return outcome
        }
    }

    private func median(_ durations: [Duration]) -> Duration {
        durations.sorted()[durations.count / 2]
    }
}

private func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}
