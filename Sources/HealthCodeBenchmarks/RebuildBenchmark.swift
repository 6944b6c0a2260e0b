import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeProjector
import Logging
import PostgresNIO
import Synchronization

/// `healthcode bench rebuild`: a blue/green rebuild (``Rebuild``) of the projection the live projector made in
/// `bench projector`, side by side in one run with that projector's rate and the COPY ceiling `bench projector`
/// measures on the same server (the same code: ``ProjectorBenchmark/run(then:)``).
public struct RebuildBenchmark: Sendable {
    /// What to run: the projector benchmark's workload, and the rebuild's parallelism.
    public struct Options: Sendable {
        public var projector: ProjectorBenchmark.Options
        /// Tasks folding in parallel. Default: the processors.
        public var workers = Rebuild.Configuration().workers

        public init(projector: ProjectorBenchmark.Options) {
            self.projector = projector
        }
    }

    /// The measurements.
    public struct Result: Sendable {
        /// Archived events the rebuild folded.
        public var events: Int
        /// Events per second of the whole rebuild, from its start to its switch.
        public var eventsPerSecond: Double
        /// Events per second of the bulk build alone (no index builds, catch-up or switch).
        public var buildEventsPerSecond: Double
        public var liveEventsPerSecond: Double
        public var copyRowsPerSecond: Double

        public var ratio: Double { liveEventsPerSecond > 0 ? eventsPerSecond / liveEventsPerSecond : 0 }

        /// The closing line.
        public var summary: String {
            String(
                format: "bench rebuild: %.0f ev/s, live %.0f ev/s, pg-copy %.0f rows/s, ratio %.2f",
                eventsPerSecond,
                liveEventsPerSecond,
                copyRowsPerSecond,
                ratio
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
        let rules = try RuleSet.decode(
            [UInt8](
                Data(
                    contentsOf: options.projector.root.appendingPathComponent("projections/rules/reference-v1.json")
                )
            )
        )
        let (projection, rebuilt) = try await ProjectorBenchmark(options: options.projector, logger: logger).run {
            configuration in
            var configuration = configuration
            configuration.options.maximumConnections = options.workers + 1
            return try await Backbone.withPostgres(configuration, logger: logger) { client in
                var settings = Rebuild.Configuration()
                settings.workers = options.workers
                let rebuild = Backbone.rebuild(
                    postgres: client,
                    configuration: settings,
                    configured: rules,
                    logger: logger
                )
                let phases = PhaseClock()
                let started = ContinuousClock.now
                let summary = try await rebuild.run(rules: nil, activatedBy: nil) { progress in
                    if progress.phase != .building { phases.mark("build") }
                }
                let total = started.duration(to: .now)
                return (summary, total, phases.elapsed("build", since: started))
            }
        }
        let (summary, total, build) = rebuilt
        let seconds = Self.seconds(total)
        let buildSeconds = Self.seconds(build ?? total)
        logger.info(
            "rebuild phases",
            metadata: [
                "events": "\(summary.events)", "people": "\(summary.people)", "build_s": "\(buildSeconds)",
                "rest_s": "\(seconds - buildSeconds)", "verified": "\(summary.verified)",
            ]
        )
        return Result(
            events: summary.events,
            eventsPerSecond: Double(summary.events) / seconds,
            buildEventsPerSecond: Double(summary.events) / buildSeconds,
            liveEventsPerSecond: projection.eventsPerSecond,
            copyRowsPerSecond: projection.copyRowsPerSecond
        )
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// When each named moment first happened.
private final class PhaseClock: Sendable {
    private let marks = Mutex<[String: ContinuousClock.Instant]>([:])

    func mark(_ name: String) {
        let now = ContinuousClock.now
        marks.withLock { if $0[name] == nil { $0[name] = now } }
    }

    func elapsed(_ name: String, since start: ContinuousClock.Instant) -> Duration? {
        marks.withLock { $0[name] }.map { start.duration(to: $0) }
    }
}
