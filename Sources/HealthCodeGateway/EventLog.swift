import HealthCodeCore

/// The durable log that accepted events are appended to (Kafka, through ``KafkaEventLog``).
///
/// `append` returns one result per record, in order, only once the log acknowledged or refused
/// each record: the gateway never answers 2xx for an event that is not durably in the log.
public protocol EventLog: Sendable {
    func append(_ records: [EventRecord]) async -> [Result<EventPosition, EventLogError>]

    /// Whether the log takes records now. `false` while its client is unusable (a Kafka producer
    /// replacing itself after a fatal error): the gateway's `/health` answers 503 meanwhile.
    var isWriting: Bool { get }
}

/// One event ready for the log: its partitioning key (the pseudonym or area code) and its JSON.
public struct EventRecord: Sendable {
    public var key: String
    public var value: [UInt8]
    /// Which item of the ingested batch it is (``EventIngestion/ingest(_:from:into:)``); 0 when not from a batch.
    public var item: Int

    public init(key: String, value: [UInt8], item: Int = 0) {
        self.key = key
        self.value = value
        self.item = item
    }
}

/// Why the log did not take an event. The description names the failure, never the event.
public struct EventLogError: Error, Sendable, CustomStringConvertible {
    /// A stable code, e.g. `broker-unavailable`, `timed-out`, `message-too-large`.
    public var code: String
    /// Whether sending the same event again may succeed.
    public var isRetriable: Bool
    public var detail: String

    public init(code: String, isRetriable: Bool, detail: String) {
        self.code = code
        self.isRetriable = isRetriable
        self.detail = detail
    }

    public var description: String { "event log refused the event (\(code)): \(detail)" }
}
