import HealthCodeCore

/// What the console needs beyond the query API, as ports: PostgreSQL's stores in production (assembled by
/// `HealthCodeBackbone`), in-memory ones in tests.
public protocol ConsoleOperations: Sendable {
    /// Whether the analyst may approve or reject held changes.
    func mayApprove(analyst: String) async throws -> Bool
    /// What the dashboard shows, its histories from `since` on.
    func dashboard(since: Instant) async throws -> DashboardFacts
    /// Held changes: those waiting first, then the latest decided ones.
    func proposals() async throws -> [Proposal]
    func proposal(_ id: Int64) async throws -> Proposal?
    /// Approves or rejects a held change as `analyst`; throws ``ProposalRefusal`` when it may not be.
    func decide(_ id: Int64, approve: Bool, by analyst: String) async throws -> Proposal
    /// The evidence bundle (JSON) of a person's code at `at` as known at `knownAt`, judged by the rule set
    /// `ruleSet` names (nil: the one in force at `knownAt`), with who asked and why in its context.
    func evidence(
        of subject: String,
        at: Instant,
        knownAt: Instant,
        ruleSet: String?,
        context: [(name: String, value: String)]
    ) async throws -> [UInt8]
}

/// The dashboard's facts, read at once.
public struct DashboardFacts: Sendable {
    /// Codes now, per district people were last known in (`nil`: none known).
    public var codesByArea: [CodeCensus]
    /// Codes over time (samples, ascending).
    public var codesOverTime: [CodeCensusSample]
    /// Codes per area at the start of the window (the earliest hourly sample in it), to compare with now.
    public var codesByAreaEarlier: AreaCensusSample?
    /// Every publisher's feed: its last event and events per minute lately.
    public var feeds: [PublisherFeed]
    /// Each projector's last report of its health.
    public var projectors: [ProjectorReport]
    public var deadLetters: DeadLetterFacts
    /// Review overrides held for a second officer (their ids, offices, officers and when).
    public var heldOverrides: [HeldOverrideFacts]

    public init(
        codesByArea: [CodeCensus],
        codesOverTime: [CodeCensusSample],
        codesByAreaEarlier: AreaCensusSample? = nil,
        feeds: [PublisherFeed],
        projectors: [ProjectorReport],
        deadLetters: DeadLetterFacts,
        heldOverrides: [HeldOverrideFacts]
    ) {
        self.codesByArea = codesByArea
        self.codesOverTime = codesOverTime
        self.codesByAreaEarlier = codesByAreaEarlier
        self.feeds = feeds
        self.projectors = projectors
        self.deadLetters = deadLetters
        self.heldOverrides = heldOverrides
    }

    /// Codes now, everywhere.
    public var codesNow: CodeCensus {
        codesByArea.reduce(into: CodeCensus(area: nil)) {
            $0.green += $1.green
            $0.yellow += $1.yellow
            $0.red += $1.red
        }
    }
}

/// Messages parked as dead letters: how many wait, and the latest few (where and why, never their bytes).
public struct DeadLetterFacts: Sendable, Hashable {
    public var waiting: Int
    public var latest: [Parked]

    public struct Parked: Sendable, Hashable {
        public var topic: String
        public var partition: Int32
        public var offset: Int64
        public var reason: String
        public var parkedAt: Instant

        public init(topic: String, partition: Int32, offset: Int64, reason: String, parkedAt: Instant) {
            self.topic = topic
            self.partition = partition
            self.offset = offset
            self.reason = reason
            self.parkedAt = parkedAt
        }
    }

    public init(waiting: Int, latest: [Parked]) {
        self.waiting = waiting
        self.latest = latest
    }
}

/// A review override held for a second officer.
public struct HeldOverrideFacts: Sendable, Hashable {
    public var id: Int64
    public var office: String
    public var officer: String
    public var heldAt: Instant

    public init(id: Int64, office: String, officer: String, heldAt: Instant) {
        self.id = id
        self.office = office
        self.officer = officer
        self.heldAt = heldAt
    }
}

/// A change held for a second operator (a rule set or a designation that would turn many people red) with
/// the impact report that held it.
public struct Proposal: Sendable {
    public enum Kind: String, Sendable {
        case ruleSet = "rule-set"
        case designation
    }

    public enum Status: String, Sendable {
        case held, approved, rejected
    }

    public var id: Int64
    public var kind: Kind
    /// What it is, in a line: `reference-v1@1.1.0`, `designation of 420106 as high`.
    public var title: String
    public var effectiveFrom: Instant?
    public var turningRed: Int
    public var threshold: Int
    public var impact: ImpactReport
    public var requestedBy: String
    public var requestedAt: Instant
    public var status: Status
    public var decidedBy: String?
    public var decidedAt: Instant?

    public init(
        id: Int64,
        kind: Kind,
        title: String,
        effectiveFrom: Instant?,
        turningRed: Int,
        threshold: Int,
        impact: ImpactReport,
        requestedBy: String,
        requestedAt: Instant,
        status: Status,
        decidedBy: String?,
        decidedAt: Instant?
    ) {
        self.id = id
        self.kind = kind
        self.title = title
        self.effectiveFrom = effectiveFrom
        self.turningRed = turningRed
        self.threshold = threshold
        self.impact = impact
        self.requestedBy = requestedBy
        self.requestedAt = requestedAt
        self.status = status
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
    }
}

/// Why a held change could not be decided: `unknown`, `decided` or `same-operator`.
public struct ProposalRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var detail: String

    public init(code: String, detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}
