import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import HealthCodePostgres
import Logging
import PostgresNIO

/// The gateway's ``DesignationOversight`` on PostgreSQL: a designation's impact is measured on the people
/// present in its area while it is in effect (``PopulationImpact/report(_:presentFor:holdOver:budget:)``), under
/// the rule set in force; over ``GatewayConfiguration/designationHoldOver`` people turning red, or when the
/// count is not done within ``GatewayConfiguration/designationImpactBudget``, it is held in `held_change`.
public struct DesignationImpactOversight: DesignationOversight {
    private let postgres: PostgresClient
    private let configured: RuleSet
    private let holdOver: Int
    private let budget: Duration
    private let store: HeldChangeStore
    private let logger: Logger

    /// - Parameter configured: decides before the first rule-set activation.
    public init(postgres: PostgresClient, configured: RuleSet, holdOver: Int, budget: Duration, logger: Logger) {
        self.postgres = postgres
        self.configured = configured
        self.holdOver = holdOver
        self.budget = budget
        self.store = HeldChangeStore(client: postgres, logger: logger)
        self.logger = logger
    }

    public func hold(_ event: CloudEvent, from publisher: String) async throws -> Int64? {
        guard let job = AreaReevaluation(affectedBy: event) else { return nil }
        let change = ProposedChange.designation(event)
        let comparison = try await Backbone.comparison(
            of: change,
            at: change.comparedAt(now: Instant.now()),
            postgres: postgres,
            configured: configured,
            logger: logger
        )
        let (report, complete) = try await PopulationImpact(postgres: postgres, logger: logger)
            .report(comparison, presentFor: job, holdOver: holdOver, budget: budget)
        guard !complete || report.turningRed > holdOver else { return nil }
        let id = try await store.hold(
            .designation,
            body: event.jsonBytes(),
            effectiveFrom: nil,
            impact: report,
            threshold: holdOver,
            requestedBy: publisher
        )
        logger.notice(
            "designation held for a second operator",
            metadata: [
                "held": "\(id)", "publisher": "\(publisher)", "turningRed": "\(report.turningRed)",
                "counted": "\(complete ? "all" : "within the budget only")",
            ]
        )
        return id
    }

}

extension HeldChangeStore: HeldDesignations {
    public func unpublishedApprovals() async throws -> [(id: Int64, event: [UInt8])] {
        try await unpublishedDesignations().map { ($0.id, $0.body) }
    }
}

extension PopulationImpact {
    /// The report of `comparison` over the people present where and when `job` says, stopping as soon as more
    /// than `holdOver` would turn red or `budget` has passed; whether every such person was counted.
    public func report(
        _ comparison: PolicyComparison,
        presentFor job: AreaReevaluation,
        holdOver: Int,
        budget: Duration
    ) async throws -> (ImpactReport, complete: Bool) {
        let deadline = ContinuousClock.now + budget
        var report = ImpactReport()
        var stale: [String] = []
        var complete = true
        try await scan.states(presentFor: job) { subject, state in
            if comparison.answers(state) {
                comparison.compare(state, of: subject, into: &report)
            } else {
                stale.append(subject)
            }
            guard report.turningRed <= holdOver, ContinuousClock.now < deadline else {
                complete = false
                return false
            }
            return true
        }
        for start in stride(from: 0, to: stale.count, by: replayBatch) where complete {
            let subjects = Array(stale[start..<min(start + replayBatch, stale.count)])
            for (subject, state) in try await foldedAnew(subjects, for: comparison) {
                comparison.compare(state, of: subject, into: &report)
            }
            if report.turningRed > holdOver || ContinuousClock.now >= deadline { complete = false }
        }
        return (report, complete)
    }
}

extension Backbone {
    /// Approves or rejects held change `id` as `operatorName` (not the one who asked): an approved rule set is
    /// activated with the approval; an approved designation is then appended to the event log, with any
    /// approved one an earlier approval left unpublished (``HeldDesignationRelease``).
    /// - Throws: ``HeldChangeRefusal``.
    public static func decideHeldChange(
        _ id: Int64,
        approve: Bool,
        by operatorName: String,
        topic: EventTopicConfiguration,
        postgres: PostgresClient,
        logger: Logger
    ) async throws -> HeldChange {
        let store = HeldChangeStore(client: postgres, logger: logger)
        var decided = try await store.decide(id, approve: approve, by: operatorName)
        guard approve, decided.kind == .designation else { return decided }
        try topic.validate()
        var configuration = KafkaProducerConfiguration(bootstrapServers: topic.bootstrapServers)
        configuration.clientID = "healthcode-approvals"
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let release = HeldDesignationRelease(
            designations: store,
            log: KafkaEventLog(producer: producer, topic: topic.topic),
            interval: .seconds(5),
            logger: logger
        )
        _ = try await withServices([producer], logger: logger) { try await release.publishApproved() }
        decided = try await store.change(id) ?? decided
        return decided
    }
}
