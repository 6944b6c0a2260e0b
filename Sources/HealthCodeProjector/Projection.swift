import HealthCodeCore
import HealthCodePostgres
import Logging
import Metrics

/// A consumed Kafka message, as the projection needs it.
public struct ConsumedMessage: Sendable {
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]

    public init(offset: Int64, key: [UInt8]?, value: [UInt8]) {
        self.offset = offset
        self.key = key
        self.value = value
    }
}

/// Consecutive messages of one partition.
public struct PartitionBatch: Sendable {
    public var topic: String
    public var partition: Int32
    public var messages: [ConsumedMessage]

    public init(topic: String, partition: Int32, messages: [ConsumedMessage]) {
        self.topic = topic
        self.partition = partition
        self.messages = messages
    }
}

/// What applying a batch did.
public enum ProjectionOutcome: Sendable, Equatable {
    /// The batch is applied and the partition's stored position is now `next`.
    case applied(next: Int64, events: Int, newEvents: Int, deadLetters: Int, codeChanges: Int)
    /// The stored position was not where this consumer expected it: another consumer owns or owned
    /// the partition. Nothing was written; continue from `storedPosition`.
    case fenced(storedPosition: Int64)
}

/// Folds batches of events into PostgreSQL exactly once.
///
/// One transaction per batch: the position moves by compare-and-set from where this consumer
/// expects it, the events are archived (a re-sent `source`+`id` inserts nothing and changes
/// nothing), each touched person's state is folded and re-evaluated, changed codes are logged, and
/// undecodable messages become dead letters. A crash anywhere rolls all of it back together.
public struct Projection: Sendable {
    private let store: ProjectionStore
    private let catalog: RiskAreaCatalog
    private let policy: Policy
    private let group: String
    private let now: @Sendable () -> Instant
    private let logger: Logger
    private let transactionTimer = Timer(label: "hc_projector_transaction_seconds")
    private let eventsCounter = Counter(label: "hc_projector_events_total")
    private let deadLetterCounter = Counter(label: "hc_projector_dead_letters_total")

    public init(
        store: ProjectionStore,
        catalog: RiskAreaCatalog,
        policy: Policy,
        group: String,
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.store = store
        self.catalog = catalog
        self.policy = policy
        self.group = group
        self.now = now
        self.logger = logger
    }

    /// Applies the messages of `batch` at or after `position`, the partition's next offset as this
    /// consumer knows it. Messages before `position` were applied already and are skipped.
    public func apply(_ batch: PartitionBatch, from position: Int64) async throws -> ProjectionOutcome {
        let messages = batch.messages.filter { $0.offset >= position }
        guard let last = messages.last else {
            return .applied(next: position, events: 0, newEvents: 0, deadLetters: 0, codeChanges: 0)
        }
        let next = last.offset + 1
        let decoded = decode(messages, topic: batch.topic, partition: batch.partition)
        var areas = try await catalog.refresh()
        let evaluatedAt = now()
        let started = ContinuousClock.now

        let outcome = try await store.withTransaction { transaction -> ProjectionOutcome in
            guard
                try await transaction.advancePosition(
                    group: group,
                    topic: batch.topic,
                    partition: batch.partition,
                    expected: position,
                    next: next
                )
            else {
                let stored = try await transaction.position(
                    group: group,
                    topic: batch.topic,
                    partition: batch.partition
                )
                return .fenced(storedPosition: stored ?? 0)
            }
            let newAreaKeys = try await transaction.archiveAreaEvents(decoded.areaEvents)
            for archived in decoded.areaEvents
            where newAreaKeys.contains(EventKey(source: archived.event.source, id: archived.event.id)) {
                areas.apply(archived.event)
            }
            let newKeys = try await transaction.archivePersonEvents(decoded.personEvents)
            var newEventsBySubject: [String: [CloudEvent]] = [:]
            for archived in decoded.personEvents
            where newKeys.contains(EventKey(source: archived.event.source, id: archived.event.id)) {
                newEventsBySubject[archived.event.subject, default: []].append(archived.event)
            }
            let subjects = Array(newEventsBySubject.keys)
            let stored = try await transaction.loadPeople(subjects)
            var updates: [PersonUpdate] = []
            var decisions: [DecisionRecord] = []
            updates.reserveCapacity(subjects.count)
            for subject in subjects {
                let previous = stored[subject]
                var state = previous?.state ?? PersonState()
                var count = previous?.eventCount ?? 0
                let events = newEventsBySubject[subject] ?? []
                for event in events where state.apply(event) { count += 1 }
                let decision = policy.evaluate(state, areas: areas, at: evaluatedAt)
                updates.append(
                    PersonUpdate(
                        subject: subject,
                        state: state,
                        eventCount: count,
                        decision: decision,
                        evaluatedAt: evaluatedAt
                    )
                )
                let old = previous?.code
                if old?.status != decision.status || old?.validUntil != decision.validUntil {
                    decisions.append(
                        DecisionRecord(
                            subject: subject,
                            decidedAt: evaluatedAt,
                            oldStatus: old?.status,
                            decision: decision,
                            trigger: events.last.map { EventReference(source: $0.source, id: $0.id) }
                        )
                    )
                }
            }
            try await transaction.savePeople(updates)
            try await transaction.appendDecisions(decisions)
            try await transaction.recordDeadLetters(decoded.deadLetters)
            return .applied(
                next: next,
                events: messages.count,
                newEvents: newKeys.count + newAreaKeys.count,
                deadLetters: decoded.deadLetters.count,
                codeChanges: decisions.count
            )
        }
        transactionTimer.record(duration: ContinuousClock.now - started)
        if case .applied(_, let events, _, let deadLetters, _) = outcome {
            eventsCounter.increment(by: events)
            if deadLetters > 0 {
                deadLetterCounter.increment(by: deadLetters)
                logger.warning(
                    "messages parked as dead letters",
                    metadata: ["partition": "\(batch.partition)", "count": "\(deadLetters)"]
                )
            }
        }
        return outcome
    }

    private struct DecodedBatch {
        var personEvents: [ArchivedEvent] = []
        var areaEvents: [ArchivedEvent] = []
        var deadLetters: [DeadLetter] = []
    }

    private func decode(_ messages: [ConsumedMessage], topic: String, partition: Int32) -> DecodedBatch {
        var result = DecodedBatch()
        var seen = Set<EventKey>()
        for message in messages {
            let event: CloudEvent
            do {
                event = try EventDecoder.decode(message.value)
            } catch {
                result.deadLetters.append(
                    DeadLetter(
                        topic: topic,
                        partition: partition,
                        offset: message.offset,
                        key: message.key,
                        value: message.value,
                        reason: error.description
                    )
                )
                continue
            }
            // A retry of the same event within one batch is archived once.
            guard seen.insert(EventKey(source: event.source, id: event.id)).inserted else { continue }
            let archived = ArchivedEvent(
                event: event,
                body: String(decoding: message.value, as: UTF8.self),
                topic: topic,
                partition: partition,
                offset: message.offset
            )
            if event.subjectIsAreaCode {
                result.areaEvents.append(archived)
            } else {
                result.personEvents.append(archived)
            }
        }
        return result
    }
}
