import HealthCodeCore
import Logging
import Metrics
import ServiceLifecycle

/// Keeps materialised codes equal to the policy evaluated now when nothing new arrives for a person:
/// - a code whose `validUntil` has passed is re-evaluated (a close contact's 14 days end);
/// - a designation that arrived later than the presences it concerns re-evaluates the people who
///   were in its area during its window, in chunks, from the queue the projector fills in the
///   designation's own transaction.
///
/// Every projector runs one; they share the work through row locks (`SKIP LOCKED`).
public struct Reevaluator: Service {
    /// Settings of the re-evaluator.
    public struct Configuration: Sendable {
        /// Pause when there is nothing to do; bounds how late a due code is refreshed. Default 1 s.
        public var idleInterval: Duration = .seconds(1)
        /// People per transaction. Default 500.
        public var chunkSize: Int = 500
        /// Longest wait for one transaction before it is abandoned and tried again (see
        /// ``TransactionDeadline``). Default 30 s.
        public var transactionTimeout: Duration = .seconds(30)

        public init() {}
    }

    private let store: any ProjectionStorage
    private let catalog: RiskAreaCatalog
    private let rules: RuleSetCatalog
    private let configuration: Configuration
    private let progress: ProjectorProgress?
    private let now: @Sendable () -> Instant
    private let logger: Logger
    private let dueCounter = Counter(label: "hc_reevaluations_total", dimensions: [("cause", "due")])
    private let areaCounter = Counter(label: "hc_reevaluations_total", dimensions: [("cause", "designation")])
    private let failureCounter = Counter(label: "hc_reevaluation_failures_total")

    /// - Parameter progress: told of every re-evaluation's success or failure, for `/health`.
    public init(
        store: any ProjectionStorage,
        catalog: RiskAreaCatalog,
        rules: RuleSetCatalog,
        configuration: Configuration,
        progress: ProjectorProgress? = nil,
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.store = store
        self.catalog = catalog
        self.rules = rules
        self.configuration = configuration
        self.progress = progress
        self.now = now
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var worked = 0
            do {
                // Shutdown abandons a re-evaluation at once (it rolls back and is done again after a
                // restart) rather than wait for a database that may be gone.
                worked += try await cancelWhenGracefulShutdown {
                    try await TransactionDeadline.run(
                        work: "due codes",
                        timeout: configuration.transactionTimeout
                    ) { [self] in
                        try await refreshDueCodes()
                    }
                }
                worked += try await cancelWhenGracefulShutdown {
                    try await TransactionDeadline.run(
                        work: "designation re-evaluation",
                        timeout: configuration.transactionTimeout
                    ) { [self] in
                        try await reevaluateForDesignations()
                    }
                }
                progress?.reevaluation(succeeded: true)
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully {
                    if error is CancellationError {
                        logger.notice(
                            "shutdown: abandoned a re-evaluation in progress, rolled back; it is done again after a restart"
                        )
                    }
                    break
                }
                failureCounter.increment()
                progress?.reevaluation(succeeded: false)
                logger.error("re-evaluation failed; retrying", metadata: ["error": "\(error)"])
            }
            if worked == 0 {
                // Nothing due: wait, but wake for shutdown (graceful or not) at once.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: configuration.idleInterval) }
            }
        }
    }

    /// Re-evaluates one chunk of people whose code is due; returns how many.
    func refreshDueCodes() async throws -> Int {
        try await store.withProjectionTransaction { transaction in
            try await transaction.lockDesignations(exclusive: false)
            let areas = try await catalog.refresh(from: transaction)
            let instant = now()
            let due = try await transaction.dueSubjects(at: instant, limit: configuration.chunkSize)
            guard !due.isEmpty else { return 0 }
            let policy = try await policy(at: instant, in: transaction)
            let people = try await loadPeople(due, skipLocked: true, at: instant, policy: policy, in: transaction)
            _ = try await CodeEvaluator(policy: policy).evaluate(
                people,
                areas: areas,
                at: instant,
                trigger: { _ in nil },
                shard: .shared,
                in: transaction
            )
            dueCounter.increment(by: people.count)
            return people.count
        }
    }

    /// Works one chunk of the oldest queued designation change; returns how many people it covered.
    func reevaluateForDesignations() async throws -> Int {
        try await store.withProjectionTransaction { transaction in
            try await transaction.lockDesignations(exclusive: false)
            guard let job = try await transaction.claimAreaReevaluation() else { return 0 }
            let areas = try await catalog.refresh(from: transaction)
            let subjects = try await transaction.people(presentFor: job, limit: configuration.chunkSize)
            let instant = now()
            let policy = try await policy(at: instant, in: transaction)
            let people = try await loadPeople(subjects, skipLocked: false, at: instant, policy: policy, in: transaction)
            _ = try await CodeEvaluator(policy: policy).evaluate(
                people,
                areas: areas,
                at: instant,
                trigger: { _ in job.trigger },
                shard: .shared,
                in: transaction
            )
            try await transaction.advance(
                job,
                to: subjects.last ?? job.nextSubject,
                finished: subjects.count < configuration.chunkSize
            )
            areaCounter.increment(by: people.count)
            // A finished job with nobody left still counts as work, so the queue drains without pauses.
            return max(people.count, 1)
        }
    }

    /// The rule set in force at `instant`, activations read on the transaction's connection.
    private func policy(at instant: Instant, in transaction: any ProjectionTransaction) async throws -> Policy {
        try await rules.refresh(from: transaction)
        return rules.policy(at: instant)
    }

    /// People's states and codes to evaluate at `instant`; states pruned for another rule set are folded anew
    /// from the archive and kept, so that the next evaluation starts from them.
    private func loadPeople(
        _ subjects: [String],
        skipLocked: Bool,
        at instant: Instant,
        policy: Policy,
        in transaction: any ProjectionTransaction
    ) async throws -> [String: StoredPerson] {
        let (people, foldedAnew) = try await transaction.loadPeople(
            subjects,
            skipLocked: skipLocked,
            answering: policy,
            at: instant
        )
        if !foldedAnew.isEmpty {
            try await transaction.saveStates(
                foldedAnew.compactMap { subject in people[subject].map { (subject, $0.state) } }
            )
        }
        return people
    }
}
