import HealthCodeCore
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
    private let store: any ProjectionStorage
    private let catalog: RiskAreaCatalog
    private let rules: RuleSetCatalog
    private let group: String
    private let now: @Sendable () -> Instant
    private let logger: Logger
    private let transactionTimer = Timer(label: "hc_projector_transaction_seconds")
    private let eventsCounter = Counter(label: "hc_projector_events_total")
    private let deadLetterCounter = Counter(label: "hc_projector_dead_letters_total")
    private let batchSizeRecorder = Recorder(label: "hc_projector_batch_events")
    /// Consistency lag: from the gateway accepting an event (`recordedtime`) to its person's code
    /// being re-evaluated with it.
    private let consistencyLag = Timer(label: "hc_projector_consistency_lag_seconds")

    public init(
        store: any ProjectionStorage,
        catalog: RiskAreaCatalog,
        rules: RuleSetCatalog,
        group: String,
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.store = store
        self.catalog = catalog
        self.rules = rules
        self.group = group
        self.now = now
        self.logger = logger
    }

    /// How far before its evaluation instant a state keeps everything (``PersonState/prune(before:for:)``):
    /// lookups at instants up to this much before a projector's clock (another process's clock, a query
    /// `at` a little in the past) are answered from the state, earlier ones replay the archive.
    static let pruneMargin = Duration.seconds(3600)

    /// Applies the messages of `batch` at or after `position`, the partition's next offset as this
    /// consumer knows it. Messages before `position` were applied already and are skipped.
    public func apply(_ batch: PartitionBatch, from position: Int64) async throws -> ProjectionOutcome {
        let messages = batch.messages.filter { $0.offset >= position }
        guard let last = messages.last else {
            return .applied(next: position, events: 0, newEvents: 0, deadLetters: 0, codeChanges: 0)
        }
        let next = last.offset + 1
        let decoded = decode(messages, topic: batch.topic, partition: batch.partition)
        let started = ContinuousClock.now

        let (outcome, ingest) = try await store.withProjectionTransaction {
            transaction -> (ProjectionOutcome, [PublisherIngest]) in
            if let fenced = try await movePosition(of: batch, from: position, to: next, in: transaction) {
                return (fenced, [])
            }
            let projected = try await project(decoded, shard: .partition(batch.partition), in: transaction)
            try await transaction.recordDeadLetters(decoded.deadLetters)
            let outcome = ProjectionOutcome.applied(
                next: next,
                events: messages.count,
                newEvents: projected.newEvents,
                deadLetters: decoded.deadLetters.count,
                codeChanges: projected.codeChanges
            )
            return (outcome, projected.ingest)
        }
        transactionTimer.record(duration: ContinuousClock.now - started)
        recordFeeds(ingest)
        if case .applied(_, let events, _, let deadLetters, _) = outcome {
            eventsCounter.increment(by: events)
            batchSizeRecorder.record(events)
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

    /// Moves the partition's stored position from `position` to `next` by compare-and-set, writing
    /// nothing else: `.fenced` with the stored position if it was not at `position`.
    public func resetPosition(
        of batch: PartitionBatch,
        from position: Int64,
        to next: Int64
    ) async throws
        -> ProjectionOutcome
    {
        try await store.withProjectionTransaction { transaction -> ProjectionOutcome in
            try await movePosition(of: batch, from: position, to: next, in: transaction)
                ?? .applied(next: next, events: 0, newEvents: 0, deadLetters: 0, codeChanges: 0)
        }
    }

    /// A transaction's first statement: moves the stored position from `position` to `next` by
    /// compare-and-set. Returns `.fenced` with the stored position if it was elsewhere, `nil` if moved.
    private func movePosition(
        of batch: PartitionBatch,
        from position: Int64,
        to next: Int64,
        in transaction: any ProjectionTransaction
    ) async throws -> ProjectionOutcome? {
        let moved = try await transaction.advancePosition(
            group: group,
            topic: batch.topic,
            partition: batch.partition,
            expected: position,
            next: next
        )
        guard !moved else { return nil }
        let stored = try await transaction.position(group: group, topic: batch.topic, partition: batch.partition)
        return .fenced(storedPosition: stored ?? 0)
    }

    /// What ``project(_:shard:in:)`` did.
    struct Projected {
        /// Events not archived before.
        var newEvents: Int
        /// Codes whose status or end changed.
        var codeChanges: Int
        /// The new events per publisher, as added to the publishers' feeds.
        var ingest: [PublisherIngest]
    }

    /// Archives, folds and evaluates decoded events inside `transaction`, and adds the new events to their
    /// publishers' feeds; the operational counters (code census, feeds) move in `shard`'s rows. Shared by
    /// batches and by the replay of dead letters.
    func project(
        _ decoded: DecodedBatch,
        shard: CounterShard,
        in transaction: any ProjectionTransaction
    ) async throws -> Projected {
        // Designations are read only after the lock: see ProjectionTransaction.lockDesignations.
        try await transaction.lockDesignations(exclusive: !decoded.areaEvents.isEmpty)
        var areas = try await catalog.refresh(from: transaction)
        let evaluatedAt = now()
        // The rule set in force when the batch is evaluated: an activation is followed from the next batch.
        try await rules.refresh(from: transaction)
        let policy = rules.policy(at: evaluatedAt)

        let newAreaEvents = try await transaction.archiveAreaEvents(decoded.areaEvents)
        // The publisher of each newly archived event, for the publishers' feeds.
        var sources: [String] = []
        for archived in decoded.areaEvents where newAreaEvents.contains(archived.position) {
            sources.append(archived.event.source)
            if let job = AreaReevaluation(affectedBy: archived.event) {
                try await transaction.enqueue(job)
            }
            areas.apply(archived.event)
        }

        let newEvents = try await transaction.archivePersonEvents(decoded.personEvents)
        var newEventsBySubject: [String: [CloudEvent]] = [:]
        var presences: [(subject: String, presence: Presence)] = []
        for archived in decoded.personEvents where newEvents.contains(archived.position) {
            let event = archived.event
            sources.append(event.source)
            newEventsBySubject[event.subject, default: []].append(event)
            for presence in event.presences {
                presences.append((event.subject, presence))
            }
        }
        try await transaction.recordPresences(presences)
        let ingest = PublisherIngest.tally(sources)
        try await transaction.recordIngest(ingest, shard: shard)

        let (people, foldedAnew) = try await transaction.loadPeople(
            Array(newEventsBySubject.keys),
            answering: policy,
            at: evaluatedAt
        )
        var folded: [String: StoredPerson] = [:]
        for (subject, events) in newEventsBySubject {
            var person = people[subject] ?? StoredPerson(state: PersonState(), code: nil)
            // A state folded anew from the archive holds this batch's events already.
            if !foldedAnew.contains(subject) {
                for event in events { person.state.apply(event) }
            }
            person.state.prune(before: evaluatedAt - Self.pruneMargin, for: policy)
            folded[subject] = person
        }
        try await transaction.saveStates(folded.map { ($0.key, $0.value.state) })
        let changes = try await CodeEvaluator(policy: policy).evaluate(
            folded,
            areas: areas,
            at: evaluatedAt,
            trigger: { newEventsBySubject[$0]?.last?.reference },
            shard: shard,
            in: transaction
        )
        for events in newEventsBySubject.values {
            for event in events {
                let lag = evaluatedAt - event.effectiveRecordedTime
                consistencyLag.recordNanoseconds(
                    max(0, lag.components.seconds) * 1_000_000_000 + lag.components.attoseconds / 1_000_000_000
                )
            }
        }
        return Projected(newEvents: newEvents.count + newAreaEvents.count, codeChanges: changes, ingest: ingest)
    }

    /// Publishes a committed batch's feeds as metrics: events per publisher (`hc_publisher_events_total`) and,
    /// for freshness, when a publisher's latest event was committed (`hc_publisher_last_event_timestamp_seconds`,
    /// Unix seconds).
    private func recordFeeds(_ ingest: [PublisherIngest]) {
        guard !ingest.isEmpty else { return }
        let committed = Double(now().microsecondsSinceEpoch) / 1e6
        for feed in ingest {
            let dimensions = [("publisher", feed.publisher)]
            Counter(label: "hc_publisher_events_total", dimensions: dimensions).increment(by: feed.events)
            Gauge(label: "hc_publisher_last_event_timestamp_seconds", dimensions: dimensions).record(committed)
        }
    }

    /// The people a new area event may concern: for a designation, those present in the area (or a
    /// descendant) during its window; for a retraction, those present in the retracted
    /// designation's area at any time.
    struct DecodedBatch {
        var personEvents: [ArchivedEvent] = []
        var areaEvents: [ArchivedEvent] = []
        var deadLetters: [DeadLetter] = []
    }

    func decode(_ messages: [ConsumedMessage], topic: String, partition: Int32) -> DecodedBatch {
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
            guard seen.insert(event.key).inserted else { continue }
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
