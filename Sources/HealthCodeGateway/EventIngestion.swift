import HealthCodeCore
import Logging
import Metrics

/// Authorises, validates, pseudonymises and appends one batch of a publisher's events.
///
/// This is the gateway's logic without HTTP: the batch is charged to the publisher's rate limit,
/// every event is checked against the contract and against what the publisher may publish (its
/// own `source`, its event types, retractions of its own events only), its person subject is
/// replaced by the pseudonym, `recordedtime` is set to the acceptance instant, and the valid
/// events are appended to the log in one go. The outcome has one result per event.
public struct EventIngestion: Sendable {
    private let log: any EventLog

    /// Whether the event log takes events now (``EventLog/isWriting``).
    public var logIsWriting: Bool { log.isWriting }
    private let pseudonymizer: Pseudonymizer
    private let configuration: GatewayConfiguration
    private let retractionTargets: any RetractionTargets
    private let reviewOffices: any ReviewOffices
    private let designations: any DesignationOversight
    private let now: @Sendable () -> Instant
    private let logger: Logger
    private let rateLimits: PublisherRateLimits
    private let recent: RecentEvents
    private let acceptedCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "accepted")])
    private let duplicateCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "duplicate")])
    private let rejectedCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "rejected")])
    private let forbiddenCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "forbidden")])
    private let failedCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "failed")])
    private let heldCounter = Counter(label: "hc_gateway_events_total", dimensions: [("result", "held")])

    public init(
        log: any EventLog,
        pseudonymizer: Pseudonymizer,
        configuration: GatewayConfiguration,
        retractionTargets: any RetractionTargets,
        reviewOffices: any ReviewOffices,
        designations: any DesignationOversight,
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.log = log
        self.pseudonymizer = pseudonymizer
        self.configuration = configuration
        self.retractionTargets = retractionTargets
        self.reviewOffices = reviewOffices
        self.designations = designations
        self.now = now
        self.logger = logger
        self.rateLimits = PublisherRateLimits(
            eventsPerSecond: configuration.publisherEventsPerSecond,
            burst: max(configuration.publisherBurstEvents, configuration.maximumBatchEvents)
        )
        self.recent = RecentEvents(capacity: configuration.recentEventCapacity)
    }

    /// Ingests a request body (a JSON array of CloudEvents or NDJSON) sent by `publisher`.
    public func ingest(_ body: some Collection<UInt8>, from publisher: Publisher) async -> IngestOutcome {
        let batch = EventDecoder.decodeBatch(body, maximumEvents: configuration.maximumBatchEvents)
        if let error = batch.error {
            return error.code == .batchTooLarge
                ? .tooManyEvents(limit: configuration.maximumBatchEvents) : .invalidBody(error)
        }
        guard !batch.items.isEmpty else {
            return .invalidBody(
                EventValidationError(code: .emptyBatch, fieldPath: "", reason: "the batch holds no event")
            )
        }
        if case .reject(let retryAfter) = rateLimits.take(batch.items.count, for: publisher) {
            return .rateLimited(retryAfter: retryAfter)
        }
        return .processed(await ingest(batch.items, from: publisher, into: log))
    }

    /// Ingests events already decoded, one result per item in order, appending the valid ones to `log`: every
    /// rule of the HTTP path (scopes, clock, pseudonym, `recordedtime`, the duplicate rule, retractions, held
    /// overrides and designations) except the rate limit. The Kafka-native path calls it with its own log (each
    /// ``EventRecord/item`` tells which item a record comes from); a topic is read at the reader's pace, so it
    /// needs no rate limit.
    public func ingest(
        _ items: [Result<CloudEvent, EventValidationError>],
        from publisher: Publisher,
        into log: any EventLog
    ) async -> [EventResult] {
        let recordedTime = now()
        let latestTime = recordedTime + configuration.maximumClockSkew
        var results = [EventResult?](repeating: nil, count: items.count)
        var candidates: [(index: Int, event: CloudEvent)] = []
        for (index, item) in items.enumerated() {
            switch item {
            case .failure(var error):
                error.eventIndex = index
                results[index] = EventResult(index: index, id: error.eventID, status: .rejected, errors: [error])
            case .success(var event):
                if let problem = Self.forbidden(event, for: publisher) {
                    results[index] = EventResult(index: index, id: event.id, status: .rejected, problem: problem)
                    continue
                }
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
                // `recordedtime` is when the backbone learnt of the event, also for an event timed
                // ahead of this clock within the accepted skew: it counts from its own `time` on, and
                // codes evaluated before then end at that instant (docs/POLICY.md §1, §3.5).
                event.recordedTime = recordedTime
                candidates.append((index, event))
            }
        }
        let keys = candidates.map { RecentEvents.key(source: $0.event.source, id: $0.event.id) }
        let seen = recent.contains(keys)
        var batchKeys = Set<String>()
        var records: [EventRecord] = []
        var recordIndices: [Int] = []
        var recordKeys: [String] = []
        var overrides: [(index: Int, key: String, officer: String, event: CloudEvent)] = []
        for ((index, event), (key, wasSeen)) in zip(candidates, zip(keys, seen)) {
            guard !wasSeen, batchKeys.insert(key).inserted else {
                results[index] = EventResult(index: index, id: event.id, status: .duplicate)
                continue
            }
            if case .retraction(let retraction) = event.payload {
                switch await checkRetraction(of: retraction.retracts, by: event) {
                case .allowed:
                    break
                case .forbidden(let problem):
                    results[index] = EventResult(index: index, id: event.id, status: .rejected, problem: problem)
                    continue
                case .unverifiable:
                    var result = EventResult(index: index, id: event.id, status: .failed)
                    result.failure = "archive-unavailable"
                    result.retriable = true
                    results[index] = result
                    continue
                }
            }
            if case .review(let review) = event.payload {
                if review.approval != nil {
                    let problem = EventProblem(
                        code: EventProblem.gatewayField,
                        field: "data.approvedBy",
                        reason:
                            "is set by the gateway when a second officer approves a held override, never by a publisher"
                    )
                    results[index] = EventResult(index: index, id: event.id, status: .rejected, problem: problem)
                } else {
                    overrides.append((index, key, review.officer, event))
                }
                continue
            }
            if !event.isPersonEvent, let held = await holdDesignation(event, index: index, from: publisher) {
                results[index] = held
                continue
            }
            records.append(EventRecord(key: event.subject, value: event.jsonBytes(), item: index))
            recordIndices.append(index)
            recordKeys.append(key)
            results[index] = EventResult(index: index, id: event.id, status: .accepted)
        }
        for (index, key, event) in await admitOverrides(overrides, from: publisher, at: recordedTime, into: &results) {
            records.append(EventRecord(key: event.subject, value: event.jsonBytes(), item: index))
            recordIndices.append(index)
            recordKeys.append(key)
        }
        if !records.isEmpty {
            let positions = await log.append(records)
            var acknowledged: [String] = []
            for ((recordIndex, key), position) in zip(zip(recordIndices, recordKeys), positions) {
                switch position {
                case .success(let position):
                    results[recordIndex]?.partition = position.partition
                    results[recordIndex]?.offset = position.offset
                    acknowledged.append(key)
                case .failure(let error):
                    results[recordIndex]?.status = .failed
                    results[recordIndex]?.failure = error.code
                    results[recordIndex]?.retriable = error.isRetriable
                }
            }
            recent.insert(acknowledged)
        }
        let final = results.map { $0! }
        count(final, publisher: publisher)
        return final
    }

    /// Checks a publisher's overrides against its officers and quotas (``ReviewOffices``): answers the
    /// held ones `held` and the ones of unregistered officers `rejected` in `results`, and returns the
    /// ones to append (already answered `accepted`). If the quotas cannot be checked, none is appended:
    /// they fail, retriable.
    private func admitOverrides(
        _ overrides: [(index: Int, key: String, officer: String, event: CloudEvent)],
        from publisher: Publisher,
        at recordedTime: Instant,
        into results: inout [EventResult?]
    ) async -> [(index: Int, key: String, event: CloudEvent)] {
        guard !overrides.isEmpty else { return [] }
        let admissions: [OverrideAdmission]
        do {
            admissions = try await reviewOffices.admit(
                overrides.map {
                    PendingOverride(
                        officer: $0.officer,
                        eventID: $0.event.id,
                        subject: $0.event.subject,
                        event: $0.event.jsonBytes()
                    )
                },
                office: publisher.id,
                window: OverrideQuota.window(of: recordedTime),
                quota: configuration.overrideQuota
            )
        } catch {
            logger.warning(
                "override quotas unreadable; overrides not appended",
                metadata: ["publisher": "\(publisher.id)", "error": "\(error)"]
            )
            for override in overrides {
                var result = EventResult(index: override.index, id: override.event.id, status: .failed)
                result.failure = "review-offices-unavailable"
                result.retriable = true
                results[override.index] = result
            }
            return []
        }
        var append: [(index: Int, key: String, event: CloudEvent)] = []
        for (override, admission) in zip(overrides, admissions) {
            let index = override.index
            switch admission {
            case .applied:
                append.append((index, override.key, override.event))
                results[index] = EventResult(index: index, id: override.event.id, status: .accepted)
                ReviewMetrics.count(office: publisher.id, officer: override.officer, status: "applied")
            case .held(let id):
                var result = EventResult(index: index, id: override.event.id, status: .held)
                result.heldID = id
                results[index] = result
                ReviewMetrics.count(office: publisher.id, officer: override.officer, status: "held")
            case .unregisteredOfficer:
                let problem = EventProblem(
                    code: EventProblem.unregisteredOfficer,
                    field: "data.officer",
                    reason: "is not an officer registered under this review office (healthcode reviews officers add)"
                )
                results[index] = EventResult(index: index, id: override.event.id, status: .rejected, problem: problem)
            }
        }
        let held = admissions.count { if case .held = $0 { true } else { false } }
        if held > 0 {
            logger.notice(
                "overrides held over the quota for a second officer",
                metadata: ["held": "\(held)", "publisher": "\(publisher.id)"]
            )
        }
        return append
    }

    /// A designation (or its retraction) that would turn more than the configured number of people red is held
    /// for a second operator (``DesignationOversight``): answered `held` with its id; if its impact cannot be
    /// measured, it fails, retriable. `nil`: append it.
    private func holdDesignation(_ event: CloudEvent, index: Int, from publisher: Publisher) async -> EventResult? {
        do {
            guard let id = try await designations.hold(event, from: publisher.id) else { return nil }
            var result = EventResult(index: index, id: event.id, status: .held)
            result.heldID = id
            return result
        } catch {
            logger.warning(
                "designation impact unmeasurable; designation not appended",
                metadata: ["publisher": "\(publisher.id)", "error": "\(error)"]
            )
            var result = EventResult(index: index, id: event.id, status: .failed)
            result.failure = "designation-oversight-unavailable"
            result.retriable = true
            return result
        }
    }

    private func count(_ results: [EventResult], publisher: Publisher) {
        let accepted = results.count { $0.status == .accepted }
        heldCounter.increment(by: results.count { $0.status == .held })
        let failed = results.count { $0.status == .failed }
        let forbidden = results.count { $0.isForbidden }
        acceptedCounter.increment(by: accepted)
        duplicateCounter.increment(by: results.count { $0.status == .duplicate })
        rejectedCounter.increment(by: results.count { $0.status == .rejected } - forbidden)
        forbiddenCounter.increment(by: forbidden)
        failedCounter.increment(by: failed)
        if failed > 0 {
            logger.warning(
                "events not appended to the log",
                metadata: ["failed": "\(failed)", "accepted": "\(accepted)", "publisher": "\(publisher.id)"]
            )
        }
        if forbidden > 0 {
            logger.notice(
                "events refused: not authorised for this publisher",
                metadata: ["forbidden": "\(forbidden)", "publisher": "\(publisher.id)"]
            )
        }
    }

    /// Why `publisher` may not publish `event` (its `source` or its type), if it may not.
    static func forbidden(_ event: CloudEvent, for publisher: Publisher) -> EventProblem? {
        if event.source != publisher.id {
            return EventProblem(
                code: EventProblem.forbiddenSource,
                field: "source",
                reason: "is not the authenticated publisher; a publisher publishes under its own source only"
            )
        }
        if !publisher.eventTypes.contains(event.type.rawValue) {
            return EventProblem(
                code: EventProblem.forbiddenType,
                field: "type",
                reason: "this publisher is not registered to publish \(event.type.rawValue)"
            )
        }
        return nil
    }

    enum RetractionCheck {
        /// It retracts an event of its own publisher, or one not archived (yet): the policy
        /// matches retractions by `source` and `id`, so it cannot touch another publisher's event.
        case allowed
        case forbidden(EventProblem)
        /// The archive could not be asked; the event fails (retriable).
        case unverifiable
    }

    /// Whether a retraction names an archived event of another publisher.
    private func checkRetraction(of target: String, by event: CloudEvent) async -> RetractionCheck {
        let sources: Set<String>
        do {
            sources = try await retractionTargets.sources(
                ofEvent: target,
                subject: event.subject,
                isArea: event.subjectIsAreaCode
            )
        } catch {
            return .unverifiable
        }
        guard !sources.isEmpty, !sources.contains(event.source) else { return .allowed }
        return .forbidden(
            EventProblem(
                code: EventProblem.forbiddenRetraction,
                field: "data.retracts",
                reason: "names an event of another publisher; only its publisher may retract it"
            )
        )
    }
}

/// What is wrong with one event: a stable code, the field and a reason; never a payload value.
public struct EventProblem: Sendable, Hashable {
    /// The event's `source` is not the authenticated publisher.
    public static let forbiddenSource = "forbidden-source"
    /// The publisher may not publish the event's type.
    public static let forbiddenType = "forbidden-type"
    /// A retraction of another publisher's event.
    public static let forbiddenRetraction = "forbidden-retraction"
    /// A review names an officer not registered under its office (422-style, not an authorisation refusal).
    public static let unregisteredOfficer = "unregistered-officer"
    /// A field only the gateway sets (a review's approval) sent by a publisher.
    public static let gatewayField = "gateway-field"

    public var code: String
    public var field: String
    public var reason: String

    init(code: String, field: String, reason: String) {
        self.code = code
        self.field = field
        self.reason = reason
    }

    init(_ error: EventValidationError) {
        self.init(code: error.code.rawValue, field: error.fieldPath, reason: error.reason)
    }

    /// Whether it is an authorisation problem (403) rather than a contract violation (422).
    public var isForbidden: Bool { code.hasPrefix("forbidden-") }

    /// Writes `problems` as a JSON array of `{"code","field","reason"}`: the `errors` of an ingest answer and
    /// of a reject on a publisher's rejects topic.
    public static func write(_ problems: [EventProblem], to out: inout JSONWriter) {
        out.array(problems) { out, problem in
            out.raw("{")
            out.key("code")
            out.string(problem.code)
            out.raw(",")
            out.key("field")
            out.string(problem.field)
            out.raw(",")
            out.key("reason")
            out.string(problem.reason)
            out.raw("}")
        }
    }
}

/// What happened to one event of a batch.
public struct EventResult: Sendable {
    public enum Status: String, Sendable {
        /// Durably appended to the log.
        case accepted
        /// Already appended recently (same `source` and `id`); not appended again.
        case duplicate
        /// Invalid or not authorised; sending it again will not help.
        case rejected
        /// Valid, but the log did not take it; send the batch again (it is idempotent).
        case failed
        /// Kept, not appended, until a second person approves it: an override beyond its office's or officer's
        /// hourly quota (`heldId` names it for `healthcode reviews approve`), or a designation that would turn
        /// more than the configured number of people red (`heldId` for `healthcode approvals approve`).
        case held
    }

    public var index: Int
    public var id: String?
    public var status: Status
    public var partition: Int32?
    public var offset: Int64?
    public var errors: [EventProblem]?
    public var failure: String?
    public var retriable: Bool?
    /// The held override's or designation's id (status `held`).
    public var heldID: Int64?

    init(index: Int, id: String?, status: Status, errors: [EventValidationError]? = nil) {
        self.index = index
        self.id = id
        self.status = status
        self.errors = errors?.map(EventProblem.init)
    }

    init(index: Int, id: String?, status: Status, problem: EventProblem) {
        self.index = index
        self.id = id
        self.status = status
        self.errors = [problem]
    }

    /// Whether the event was rejected because the publisher may not publish it.
    public var isForbidden: Bool { errors?.contains(where: \.isForbidden) ?? false }

    /// Writes the result as JSON, keys sorted, absent fields omitted.
    func write(to out: inout JSONWriter) {
        out.raw("{")
        if let errors {
            out.key("errors")
            EventProblem.write(errors, to: &out)
            out.raw(",")
        }
        if let failure {
            out.key("failure")
            out.string(failure)
            out.raw(",")
        }
        if let heldID {
            out.key("heldId")
            out.integer(heldID)
            out.raw(",")
        }
        if let id {
            out.key("id")
            out.string(id)
            out.raw(",")
        }
        out.key("index")
        out.integer(index)
        if let offset {
            out.raw(",")
            out.key("offset")
            out.integer(offset)
        }
        if let partition {
            out.raw(",")
            out.key("partition")
            out.integer(Int64(partition))
        }
        if let retriable {
            out.raw(",")
            out.key("retriable")
            out.bool(retriable)
        }
        out.raw(",")
        out.key("status")
        out.string(status.rawValue)
        out.raw("}")
    }
}

/// The outcome of one ingest request.
public enum IngestOutcome: Sendable {
    /// The body is not a batch of JSON objects at all.
    case invalidBody(EventValidationError)
    /// The batch exceeds the configured number of events.
    case tooManyEvents(limit: Int)
    /// The publisher exceeded its rate; nothing was appended.
    case rateLimited(retryAfter: Duration)
    /// Every event was processed; one result per event, in request order.
    case processed([EventResult])
}
