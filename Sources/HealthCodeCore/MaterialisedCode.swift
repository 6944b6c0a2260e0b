/// A materialised code as a lookup uses it: the decision and when the projector made it.
public struct MaterialisedCode: Sendable, Hashable {
    public var decision: CodeDecision
    public var evaluatedAt: Instant

    public init(decision: CodeDecision, evaluatedAt: Instant) {
        self.decision = decision
        self.evaluatedAt = evaluatedAt
    }
}

/// What one announcement of materialised-code changes says changed.
public enum CodeChange: Equatable, Sendable {
    /// The codes of these pseudonyms changed.
    case subjects([Substring])
    /// Any code may have changed (the table was truncated).
    case everything
}

/// Told about announced changes of materialised codes by whoever listens for them (PostgreSQL's
/// `LISTEN` in production): the query API's code cache.
public protocol CodeChangeObserver: Sendable {
    /// Every change is heard from now on.
    func listening()
    /// These codes changed.
    func apply(_ change: CodeChange)
    /// Announcements may be missed from now on (the connection was lost).
    func deaf()
}

/// One archived event of a person, as kept in `event_archive`.
public struct ArchivedPersonEvent: Sendable {
    public var source: String
    public var id: String
    public var type: String
    public var time: Instant
    public var recordedTime: Instant
    /// The event's canonical JSON.
    public var body: String

    public init(source: String, id: String, type: String, time: Instant, recordedTime: Instant, body: String) {
        self.source = source
        self.id = id
        self.type = type
        self.time = time
        self.recordedTime = recordedTime
        self.body = body
    }
}
