import HealthCodeCore
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reports the projector's `/health` status (``ProjectorProgress/status(stallAfter:unassignedAfter:)``) to
/// PostgreSQL every ``ProjectorConfiguration/reportInterval``, so that the operators' dashboard sees every
/// running projector in one place (`projector_report`, migration 0018), and once a minute samples the code
/// census over time (the first projector to ask in a minute takes the sample; see
/// ``ProjectionStorage/sampleOperationalFacts()``).
///
/// A report that fails (the database is away) is logged and counted (`hc_projector_report_failures_total`)
/// and the next one tried on time: reporting never stops the projector.
public struct ProgressReporter: Service {
    private let store: any ProjectionStorage
    private let progress: ProjectorProgress
    private let configuration: ProjectorConfiguration
    private let now: @Sendable () -> Instant
    private let logger: Logger
    private let failureCounter = Counter(label: "hc_projector_report_failures_total")

    public init(
        store: any ProjectionStorage,
        progress: ProjectorProgress,
        configuration: ProjectorConfiguration,
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.store = store
        self.progress = progress
        self.configuration = configuration
        self.now = now
        self.logger = logger
    }

    /// Who reports: `<group>@<host>:<pid>`, unique among running projectors.
    public static func member(group: String) -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "unknown-host"
        return "\(group)@\(host):\(getpid())"
    }

    public func run() async throws {
        let member = Self.member(group: configuration.group)
        var sampledMinute: Int64?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let instant = now()
            let status = progress.status(
                stallAfter: configuration.stallAfter,
                unassignedAfter: configuration.unassignedAfter
            )
            let report = ProjectorReport(
                member: member,
                reportedAt: instant,
                state: status.state,
                lag: status.lag,
                secondsSinceLastCommit: status.secondsSinceLastCommit,
                assignedPartitions: status.assignedPartitions,
                healthy: status.isHealthy
            )
            // The census is sampled once a minute per projector at most (by this one's clock; the database
            // keeps one sample a minute whoever takes it).
            let minute = instant.microsecondsSinceEpoch / 60_000_000
            let sampling = minute != sampledMinute
            do {
                try await cancelWhenGracefulShutdown {
                    try await TransactionDeadline.run(
                        work: "projector report",
                        timeout: configuration.transactionTimeout
                    ) { [store] in
                        try await store.report(report)
                        if sampling { try await store.sampleOperationalFacts() }
                    }
                }
                sampledMinute = minute
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                failureCounter.increment()
                logger.warning("could not report the projector's status", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: configuration.reportInterval) }
        }
    }
}
