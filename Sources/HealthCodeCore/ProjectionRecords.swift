// The records the projector, the query API and the PostgreSQL adapter exchange: what an event is
// once archived, where the log held it, a dead letter, a decision and a queued area re-evaluation.

/// The idempotency key of an event: its publisher and its id.
public struct EventKey: Sendable, Hashable {
    public var source: String
    public var id: String

    public init(source: String, id: String) {
        self.source = source
        self.id = id
    }
}

extension CloudEvent {
    /// The event's idempotency key.
    public var key: EventKey { EventKey(source: source, id: id) }
}

/// An event as it is archived: the decoded event, its canonical JSON and where Kafka held it.
public struct ArchivedEvent: Sendable {
    public var event: CloudEvent
    /// Canonical JSON of the event as consumed from Kafka.
    public var body: String
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(event: CloudEvent, body: String, topic: String, partition: Int32, offset: Int64) {
        self.event = event
        self.body = body
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// Where the event log holds an event: its partition and offset (the topic is the log's). The gateway
/// gets it when Kafka acknowledges an event; the archive keeps it with every event.
public struct EventPosition: Sendable, Hashable, Codable {
    public var partition: Int32
    public var offset: Int64

    public init(partition: Int32, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }
}

extension ArchivedEvent {
    /// Where the event was on Kafka.
    public var position: EventPosition { EventPosition(partition: partition, offset: offset) }
}

/// A person's state and code as stored.
public struct StoredPerson: Sendable {
    public var state: PersonState
    public var code: CodeDecision?

    public init(state: PersonState, code: CodeDecision?) {
        self.state = state
        self.code = code
    }
}

/// A message that could not be decoded or applied.
public struct DeadLetter: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    /// Why it failed: an error code and field path, never payload values.
    public var reason: String

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], reason: String) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.reason = reason
    }
}

/// A dead letter as stored, for listing and replay.
public struct StoredDeadLetter: Sendable {
    public var id: Int64
    public var letter: DeadLetter
    public var failedAt: Instant
    public var replayedAt: Instant?

    public init(id: Int64, letter: DeadLetter, failedAt: Instant, replayedAt: Instant?) {
        self.id = id
        self.letter = letter
        self.failedAt = failedAt
        self.replayedAt = replayedAt
    }
}

/// A change of a person's materialised code, appended to the decision log.
public struct DecisionRecord: Sendable {
    public var subject: String
    public var decidedAt: Instant
    public var oldStatus: CodeStatus?
    public var decision: CodeDecision
    /// The event whose arrival caused the re-evaluation, if any.
    public var trigger: EventReference?

    public init(
        subject: String,
        decidedAt: Instant,
        oldStatus: CodeStatus?,
        decision: CodeDecision,
        trigger: EventReference?
    ) {
        self.subject = subject
        self.decidedAt = decidedAt
        self.oldStatus = oldStatus
        self.decision = decision
        self.trigger = trigger
    }
}

/// A queued re-evaluation of the people present in a range of areas during a window.
public struct AreaReevaluation: Sendable, Hashable {
    /// Queue id; 0 before it is queued.
    public var id: Int64
    /// The area codes concerned (see ``AreaCode/coveredCodes``).
    public var areas: ClosedRange<Int32>
    /// Presences from this instant on count; `nil`: from the beginning.
    public var windowStart: Instant?
    /// Presences before this instant count; `nil`: open-ended.
    public var windowEnd: Instant?
    /// The area event that made the change.
    public var trigger: EventReference
    /// Progress: the last pseudonym done.
    public var nextSubject: String

    public init(
        id: Int64 = 0,
        areas: ClosedRange<Int32>,
        windowStart: Instant?,
        windowEnd: Instant?,
        trigger: EventReference,
        nextSubject: String = ""
    ) {
        self.id = id
        self.areas = areas
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        self.trigger = trigger
        self.nextSubject = nextSubject
    }
}

extension AreaReevaluation {
    /// Who an area event can concern: the people present in the area (and the areas it covers) while a
    /// designation is in effect, or at any time for a retraction; `nil` for any other event.
    public init?(affectedBy event: CloudEvent) {
        guard let area = AreaCode(event.subject) else { return nil }
        switch event.payload {
        case .riskArea(let designation):
            self.init(
                areas: area.coveredCodes,
                windowStart: designation.effectiveFrom,
                windowEnd: designation.effectiveUntil,
                trigger: event.reference
            )
        case .retraction:
            self.init(areas: area.coveredCodes, windowStart: nil, windowEnd: nil, trigger: event.reference)
        default:
            return nil
        }
    }
}
