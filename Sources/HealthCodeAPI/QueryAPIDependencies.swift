import HealthCodeCore

/// Where the query API reads a person's materialised code: PostgreSQL's `person_code` in production
/// (per-event-loop pools in the adapter), a dictionary in tests.
public protocol MaterialisedCodeReads: Sendable {
    /// `subject`'s materialised code; `nil`: none stored.
    func materialisedCode(of subject: String) async throws -> MaterialisedCode?
}

/// Where the query API reads a person's folded state, to evaluate the policy at another instant.
public protocol PersonStates: Sendable {
    /// `subject`'s folded state; `nil`: nothing recorded about the person.
    func personState(of subject: String) async throws -> PersonState?
}

/// Everything stored about one person, for explanations and subject-access exports.
public protocol PersonRecords: Sendable {
    /// What a replay of the person's history for evaluations at `cutoff` or later needs: the archived events
    /// except exposures, declarations and journeys that happened (a journey: arrived) before `cutoff` (every
    /// event is a correct, slower answer); with `end`, only those that happened at or before it. In archive
    /// order (`time`, `id`, `source`).
    func archivedEvents(
        of subject: String,
        relevantFrom cutoff: Instant,
        through end: Instant?
    ) async throws
        -> [ArchivedPersonEvent]
    /// One page of the person's timeline in archive order: the `limit` latest events before `page`'s event,
    /// or, without `page`, at or before `at` followed by those after `at` while the page has room; and
    /// whether earlier events exist.
    func timeline(
        of subject: String,
        at: Instant,
        before page: ExplanationPage?,
        limit: Int
    ) async throws
        -> (events: [TimelineEntry], earlier: Bool)
    /// Every stored row about the person, by table, each table's rows as one JSON array.
    func subjectAccessExport(of subject: String) async throws -> [(table: String, rowsJSON: String)]
}

/// One archived event as an explanation's timeline lists it (its body is not read).
public struct TimelineEntry: Sendable, Hashable {
    public var source: String
    public var id: String
    public var type: String
    public var time: Instant
    /// Its `recordedtime`, or its `time` when it has none.
    public var recordedTime: Instant

    public init(source: String, id: String, type: String, time: Instant, recordedTime: Instant) {
        self.source = source
        self.id = id
        self.type = type
        self.time = time
        self.recordedTime = recordedTime
    }
}

/// Who read a person's code, explanation or export: an analyst or a checkpoint platform.
public enum Reader: Sendable, Hashable {
    case analyst(String)
    case platform(String)
}

/// The registered analysts and the audit trail of every read by a reader (analysts, checkpoint
/// platforms).
public protocol AnalystDirectory: Sendable {
    /// The active analyst whose API key has this SHA-256 (hex); `nil`: none.
    func analystID(apiKeySHA256: String) async throws -> String?
    /// Appends one read to the audit trail.
    func recordRead(by reader: Reader, purpose: String, subject: String, endpoint: String) async throws
}

/// The registered client platforms of the query API (residents' apps, checkpoint readers).
public protocol ClientPlatformDirectory: Sendable {
    /// Every platform, removed ones included (with ``ClientPlatformRecord/revokedAt``).
    func clientPlatforms() async throws -> [ClientPlatformRecord]
}
