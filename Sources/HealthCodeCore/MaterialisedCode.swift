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
    /// The event as it was archived.
    public var event: CloudEvent

    public init(_ event: CloudEvent) {
        self.event = event
    }

    public var source: String { event.source }
    public var id: String { event.id }
    public var type: String { event.type.rawValue }
    public var time: Instant { event.time }
    /// When the event was recorded (its `recordedtime`, or its `time` when it has none).
    public var recordedTime: Instant { event.effectiveRecordedTime }
}
