import HealthCodeConsole
import HealthCodeCore
import HealthCodePostgres
import Logging
import PostgresNIO

/// The console's operations on PostgreSQL: the dashboard's facts (code census, publisher feeds, projector
/// reports, dead letters, held overrides), held changes and their decisions, evidence bundles.
public struct ConsoleOperationsStore: ConsoleOperations {
    let postgres: PostgresClient
    /// The configured rule set's file: it decides before any activation (evidence bundles carry it).
    let configuredFile: [UInt8]
    let logger: Logger

    /// Dead letters the dashboard lists.
    static let latestDeadLetters = 10

    public init(postgres: PostgresClient, configuredFile: [UInt8], logger: Logger) {
        self.postgres = postgres
        self.configuredFile = configuredFile
        self.logger = logger
    }

    public func mayApprove(analyst: String) async throws -> Bool {
        try await AnalystStore(client: postgres, logger: logger).mayApprove(analyst)
    }

    public func dashboard(since: Instant) async throws -> DashboardFacts {
        let operations = OperationsStore(client: postgres, logger: logger)
        async let census = operations.codeCensus()
        async let history = operations.codeCensusHistory(since: since)
        async let areaHistory = operations.areaCensusHistory(since: since)
        async let feeds = operations.publisherFeeds(since: since)
        async let projectors = operations.projectorReports()
        async let letters = latestDeadLetters()
        async let waiting = waitingDeadLetters()
        async let held = ReviewOfficeStore(client: postgres, logger: logger).held(limit: 100)
        return DashboardFacts(
            codesByArea: try await census,
            codesOverTime: try await history,
            codesByAreaEarlier: try await areaHistory.first,
            feeds: try await feeds,
            projectors: try await projectors,
            deadLetters: DeadLetterFacts(
                waiting: try await waiting,
                latest: try await letters
            ),
            heldOverrides: try await held.map {
                HeldOverrideFacts(id: $0.id, office: $0.office, officer: $0.officer, heldAt: $0.heldAt)
            }
        )
    }

    /// The latest dead letters still waiting: where and why (the API's role may not read their bytes).
    private func latestDeadLetters() async throws -> [DeadLetterFacts.Parked] {
        let rows = try await postgres.query(
            """
            SELECT kafka_topic, kafka_partition, kafka_offset, reason, hc_micros(failed_at) FROM dead_letters
            WHERE replayed_at IS NULL ORDER BY dead_letter_id DESC LIMIT \(Self.latestDeadLetters)
            """,
            logger: logger
        )
        var letters: [DeadLetterFacts.Parked] = []
        for try await (topic, partition, offset, reason, failed) in rows.decode(
            (String, Int32, Int64, String, Int64).self
        ) {
            letters.append(
                DeadLetterFacts.Parked(
                    topic: topic,
                    partition: partition,
                    offset: offset,
                    reason: reason,
                    parkedAt: Instant(microsecondsSinceEpoch: failed)
                )
            )
        }
        return letters
    }

    private func waitingDeadLetters() async throws -> Int {
        let rows = try await postgres.query(
            "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL",
            logger: logger
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    public func proposals() async throws -> [Proposal] {
        let changes = try await HeldChangeStore(client: postgres, logger: logger).changes(includeDecided: true)
        let waiting = changes.filter { $0.status == .held }
        let decided = changes.filter { $0.status != .held }.suffix(100).reversed()
        return try (waiting + decided).map(Self.proposal)
    }

    public func proposal(_ id: Int64) async throws -> Proposal? {
        try await HeldChangeStore(client: postgres, logger: logger).change(id).map(Self.proposal)
    }

    public func decide(_ id: Int64, approve: Bool, by analyst: String) async throws -> Proposal {
        do {
            return try Self.proposal(
                try await HeldChangeStore(client: postgres, logger: logger).decide(id, approve: approve, by: analyst)
            )
        } catch let refusal as HeldChangeRefusal {
            throw ProposalRefusal(code: refusal.code, detail: refusal.description)
        }
    }

    public func evidence(
        of subject: String,
        at: Instant,
        knownAt: Instant,
        ruleSet: String?,
        context: [(name: String, value: String)]
    ) async throws -> [UInt8] {
        try await Backbone.evidence(
            postgres: postgres,
            configuredFile: configuredFile,
            subject: subject,
            at: at,
            knownAt: knownAt,
            rules: ruleSet.map(Backbone.EvidenceRules.named) ?? .inForce,
            context: context,
            logger: logger
        ).jsonBytes()
    }

    /// A held change as the console shows it: what it is in a line, and its impact report read back.
    static func proposal(_ change: HeldChange) throws -> Proposal {
        let title: String
        switch change.kind {
        case .ruleSet:
            let ruleSet = try? RuleSet.decode(change.body)
            title = ruleSet.map { "\($0.id)@\($0.version)" } ?? "rule set (unreadable file)"
        case .designation:
            if let event = try? EventDecoder.decode(change.body), case .riskArea(let designation) = event.payload {
                title = "\(event.subject) designated \(designation.level.rawValue)"
            } else {
                title = "designation"
            }
        }
        return Proposal(
            id: change.id,
            kind: change.kind == .ruleSet ? .ruleSet : .designation,
            title: title,
            effectiveFrom: change.effectiveFrom,
            turningRed: change.turningRed,
            threshold: change.threshold,
            impact: try ImpactReport(storedJSON: Array(change.impact.utf8)),
            requestedBy: change.requestedBy,
            requestedAt: change.requestedAt,
            status: Proposal.Status(rawValue: change.status.rawValue) ?? .held,
            decidedBy: change.decidedBy,
            decidedAt: change.decidedAt
        )
    }
}
