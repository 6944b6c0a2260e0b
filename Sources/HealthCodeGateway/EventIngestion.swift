import HealthCodeCore
import Logging
import Metrics

/// Validates, pseudonymises and appends one batch of publisher events.
///
/// This is the gateway's logic without HTTP: every event is checked against the contract, its
/// person subject is replaced by the pseudonym, `recordedtime` is set to the acceptance instant,
/// and the valid events are appended to the log in one go. The outcome has one result per event.
public struct EventIngestion: Sendable {
    private let log: any EventLog
    private let pseudonymizer: Pseudonymizer
    private let configuration: GatewayConfiguration
    private let now: @Sendable () -> Instant
    private let logger: Logger
    private let acceptedCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "accepted")])
    private let rejectedCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "rejected")])
    private let failedCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "failed")])

    public init(
        log: any EventLog,
        pseudonymizer: Pseudonymizer,
        configuration: GatewayConfiguration,
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.log = log
        self.pseudonymizer = pseudonymizer
        self.configuration = configuration
        self.now = now
        self.logger = logger
    }

    /// Ingests a request body (a JSON array of CloudEvents or NDJSON).
    public func ingest(_ body: some Collection<UInt8>) async -> IngestOutcome {
        let batch = EventDecoder.decodeBatch(body)
        if let error = batch.error {
            return .invalidBody(error)
        }
        guard !batch.items.isEmpty else {
            return .invalidBody(
                EventValidationError(code: .emptyBatch, fieldPath: "", reason: "the batch holds no event")
            )
        }
        guard batch.items.count <= configuration.maximumBatchEvents else {
            return .tooManyEvents(count: batch.items.count, limit: configuration.maximumBatchEvents)
        }
        let recordedTime = now()
        let latestTime = recordedTime + configuration.maximumClockSkew
        var results = [EventResult?](repeating: nil, count: batch.items.count)
        var records: [EventRecord] = []
        var recordIndices: [Int] = []
        records.reserveCapacity(batch.items.count)
        for (index, item) in batch.items.enumerated() {
            switch item {
            case .failure(var error):
                error.eventIndex = index
                results[index] = EventResult(index: index, id: error.eventID, status: .rejected, errors: [error])
            case .success(var event):
                guard event.time <= latestTime else {
                    let error = EventValidationError(
                        code: .invalidValue,
                        fieldPath: "time",
                        reason: "lies in the future; an event is published after the fact it records",
                        eventIndex: index,
                        eventID: event.id
                    )
                    results[index] = EventResult(index: index, id: event.id, status: .rejected, errors: [error])
                    continue
                }
                if !event.subjectIsAreaCode { event.subject = pseudonymizer.pseudonym(of: event.subject) }
                // Within the allowed clock skew an event may be timed after the gateway's clock;
                // its recording instant is then its own time, so that recordedtime >= time holds.
                event.recordedTime = max(recordedTime, event.time)
                records.append(EventRecord(key: event.subject, value: event.jsonBytes()))
                recordIndices.append(index)
                results[index] = EventResult(index: index, id: event.id, status: .accepted)
            }
        }
        if !records.isEmpty {
            let positions = await log.append(records)
            for (recordIndex, position) in zip(recordIndices, positions) {
                switch position {
                case .success(let position):
                    results[recordIndex]?.partition = position.partition
                    results[recordIndex]?.offset = position.offset
                case .failure(let error):
                    results[recordIndex]?.status = .failed
                    results[recordIndex]?.failure = error.code
                    results[recordIndex]?.retriable = error.isRetriable
                }
            }
        }
        let outcome = IngestOutcome.processed(results.map { $0! })
        if case .processed(let results) = outcome {
            let accepted = results.count { $0.status == .accepted }
            let rejected = results.count { $0.status == .rejected }
            let failed = results.count { $0.status == .failed }
            acceptedCounter.increment(by: accepted)
            rejectedCounter.increment(by: rejected)
            failedCounter.increment(by: failed)
            if failed > 0 {
                logger.warning(
                    "events not appended to the log",
                    metadata: ["failed": "\(failed)", "accepted": "\(accepted)"]
                )
            }
        }
        return outcome
    }
}

/// What happened to one event of a batch.
public struct EventResult: Sendable, Encodable {
    public enum Status: String, Sendable, Encodable {
        /// Durably appended to the log.
        case accepted
        /// Invalid: it breaks the event contract; sending it again will not help.
        case rejected
        /// Valid, but the log did not take it; send the batch again (it is idempotent).
        case failed
    }

    public var index: Int
    public var id: String?
    public var status: Status
    public var partition: Int32?
    public var offset: Int64?
    public var errors: [EventValidationError]?
    public var failure: String?
    public var retriable: Bool?

    init(index: Int, id: String?, status: Status, errors: [EventValidationError]? = nil) {
        self.index = index
        self.id = id
        self.status = status
        self.errors = errors
    }
}

/// The outcome of one ingest request.
public enum IngestOutcome: Sendable {
    /// The body is not a batch of JSON objects at all.
    case invalidBody(EventValidationError)
    /// The batch exceeds the configured number of events.
    case tooManyEvents(count: Int, limit: Int)
    /// Every event was processed; one result per event, in request order.
    case processed([EventResult])
}

extension EventValidationError: Encodable {
    enum CodingKeys: String, CodingKey {
        case code, field, reason
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(code.rawValue, forKey: .code)
        try container.encode(fieldPath, forKey: .field)
        try container.encode(reason, forKey: .reason)
    }
}
