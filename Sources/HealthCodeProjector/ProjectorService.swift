import HealthCodeCore
import HealthCodeKafka
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Consumes the event topic as a member of the projector group and applies every batch with
/// ``Projection`` exactly once. It runs its Kafka consumer itself, so that on graceful shutdown the
/// consumer leaves the group after the last batch in hand, and both end together.
///
/// Positions live in PostgreSQL, not in Kafka: when partitions are assigned, the consumer is told
/// to start each one at the position stored in PostgreSQL before any of its messages is fetched.
/// A batch that meets a position moved ahead (another member applied it) continues from the stored
/// position. A position moved back (a failover to a replica that missed the last commits, a restored
/// backup, a manual reset) is read again from there: the partition is sought back, with a warning
/// naming both positions, and the archive's key keeps re-applied events idempotent. A batch that
/// does not continue from the position is never applied past the gap. A log that ends before the
/// stored position was replaced (topic re-created, in-memory broker restarted): it is read again
/// from its start, or halted and reported (``ProjectorConfiguration/onReplacedLog``). A batch that
/// fails on PostgreSQL is retried with backoff until it applies; the consumer's buffer fills
/// meanwhile and fetching pauses (backpressure).
///
/// Partitions are applied concurrently, each in order on its own lane (``PartitionLanes``): one
/// partition's transaction waits on PostgreSQL while another's events are decoded and folded.
public struct ProjectorService: Service {
    private let consumer: KafkaConsumer
    private let projection: Projection
    private let store: any ProjectionStorage
    private let configuration: ProjectorConfiguration
    private let logger: Logger
    private let positions = PartitionPositions()
    private let progress: ProjectorProgress
    private let lanes: PartitionLanes
    private let rewindCounter = Counter(label: "hc_projector_rewinds_total")
    private let replacedLogCounter = Counter(label: "hc_projector_replaced_logs_total")

    private let partitionCount: @Sendable () async throws -> Int

    /// - Parameter partitionCount: the topic's number of partitions, asked when the projector reads
    ///   every partition directly and while it holds none.
    public init(
        consumer: KafkaConsumer,
        projection: Projection,
        store: any ProjectionStorage,
        configuration: ProjectorConfiguration,
        progress: ProjectorProgress,
        partitionCount: @escaping @Sendable () async throws -> Int,
        logger: Logger
    ) {
        self.partitionCount = partitionCount
        self.progress = progress
        self.lanes = PartitionLanes(limit: configuration.maximumBatchesInFlight) { [consumer] in
            consumer.demandChanged()
        }
        self.consumer = consumer
        self.projection = projection
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let group = configuration.group
        let topic = configuration.topic
        let startOffsets: KafkaAssignmentHook = { [store, positions, logger] assigned in
            let stored = try await store.positions(
                group: group,
                topic: topic,
                partitions: assigned.map(\.partition)
            )
            var offsets: [KafkaTopicPartition: KafkaOffset] = [:]
            for partition in assigned {
                let next = stored[partition.partition] ?? 0
                positions.set(partition.partition, next)
                offsets[partition] = .offset(next)
            }
            logger.info(
                "partitions assigned",
                metadata: ["partitions": "\(assigned.map(\.partition).sorted())", "group": "\(group)"]
            )
            return offsets
        }
        switch configuration.assignment {
        case .direct:
            let count = try await partitionCount()
            try consumer.assign(
                try await startOffsets((0..<Int32(count)).map { KafkaTopicPartition(topic: topic, partition: $0) })
            )
        case .group:
            try subscribe(group: group, topic: topic, startOffsets: startOffsets)
        }
        // While the lanes are full the consumer hands out nothing, but this loop keeps iterating it, so
        // that rebalances are served even when every lane waits on PostgreSQL.
        consumer.setDemand { [lanes] in lanes.hasRoom }
        // The consumer runs inside this service, not beside it in the group: graceful shutdown closes
        // it (leaving the group), the batches in hand are finished, and both end together. As a service
        // of its own it would end before its turn in the group's shutdown, which fails the group.
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { lanesGroup in
                lanesGroup.addTask { try await consumer.run() }
                lanesGroup.addTask { try await watch() }
                for try await batch in consumer.batches {
                    let action = lanes.submit(batch)
                    if action.startLane {
                        let partition = batch.partition
                        lanesGroup.addTask { try await runLane(partition) }
                    }
                    if action.pause {
                        // Fails only when the consumer is closing, which ends this loop anyway.
                        try? await consumer.pause([batch.topicPartition])
                    }
                }
            }
        } onGracefulShutdown: {
            consumer.close()
        }
    }

    /// Joins the group; on every assignment each partition starts at its stored position.
    private func subscribe(
        group: String,
        topic: String,
        startOffsets: @escaping KafkaAssignmentHook
    ) throws {
        try consumer.subscribe(
            topics: [topic],
            onAssign: startOffsets,
            onRevoke: { [positions, progress, lanes, logger] revoked in
                lanes.drop(Set(revoked.map(\.partition)))
                for partition in revoked {
                    positions.remove(partition.partition)
                    progress.revoked(partition: partition.partition)
                }
                logger.info("partitions revoked", metadata: ["partitions": "\(revoked.map(\.partition).sorted())"])
            }
        )
    }

    /// Applies the partition's batches in order until its queue is empty.
    private func runLane(_ partition: Int32) async throws {
        do {
            while let (batch, resume) = lanes.next(for: partition) {
                defer { lanes.finished() }
                if resume {
                    try? await consumer.resume([batch.topicPartition])
                }
                try Task.checkCancellation()
                try await apply(batch)
            }
        } catch {
            lanes.abandon(partition)
            throw error
        }
    }

    private func apply(_ batch: KafkaMessageBatch) async throws {
        guard let position = positions.get(batch.partition) else { return }  // revoked meanwhile
        if batch.highWatermark >= 0, batch.highWatermark < position {
            try await replacedLog(batch.topicPartition, position: position, logEnd: batch.highWatermark)
            return
        }
        if let first = batch.first?.offset, first > position {
            guard try await acceptsGap(batch, first: first, position: position) else { return }
        }
        positions.rewound(batch.partition)
        let chunks = BatchChunks(chunkSize: configuration.batchSize)
        try await chunks.apply(batch.count, from: position) { range, from in
            let partitionBatch = PartitionBatch(
                topic: batch.topic,
                partition: batch.partition,
                messages: batch[range].map {
                    ConsumedMessage(offset: $0.offset, key: $0.key.map(Array.init), value: Array($0.value))
                }
            )
            let outcome = try await applyRetrying(partitionBatch, from: from)
            switch outcome {
            case .applied(let next, _, _, _, _):
                positions.set(batch.partition, next)
                let lag = max(0, batch.highWatermark - next)
                progress.committed(partition: batch.partition, lag: lag)
                Gauge(label: "hc_projector_lag", dimensions: [("partition", "\(batch.partition)")]).record(lag)
            case .fenced(let stored) where stored > from:
                logger.warning(
                    "stored position moved by another consumer; skipping to it",
                    metadata: ["partition": "\(batch.partition)", "expected": "\(from)", "stored": "\(stored)"]
                )
                positions.set(batch.partition, stored)
            case .fenced(let stored):
                logger.warning(
                    "stored position is behind this projector (database failed over, restored or reset); reading the partition again from it",
                    metadata: ["partition": "\(batch.partition)", "expected": "\(from)", "stored": "\(stored)"]
                )
                try await rewind(batch.topicPartition, to: stored)
            }
            return outcome
        }
    }

    /// Reads `partition` again from `offset`: what is waiting in its lane or in the consumer was read
    /// after the position and is dropped; the consumer fetches from `offset` next.
    private func rewind(_ partition: KafkaTopicPartition, to offset: Int64) async throws {
        rewindCounter.increment()
        positions.set(partition.partition, offset)
        positions.rewinding(partition.partition, to: offset)
        let wasPaused = lanes.drop([partition.partition])
        try await consumer.seek(partition, to: offset == 0 ? .beginning : .offset(offset))
        if wasPaused { try await consumer.resume([partition]) }
    }

    /// A batch that starts after the position: applying it would skip the messages in between. Either
    /// it was read before a rewind (dropped: the consumer reads from the position again), or the messages
    /// in between are gone from the log (retention deleted them before they were applied): then they
    /// cannot be read by anyone, which is logged as an error, and the batch, starting at the log's
    /// start, is applied (the stored position moves from where it was to after the batch).
    private func acceptsGap(_ batch: KafkaMessageBatch, first: Int64, position: Int64) async throws -> Bool {
        if positions.isRewinding(batch.partition, to: position) {
            // Read before the rewind, or the log's start is unknown for now: dropped, nothing applied.
            guard let watermarks = try? await consumer.watermarks(for: [batch.topicPartition]),
                let low = watermarks[batch.topicPartition]?.low, low > position
            else { return false }
            guard first <= low else {
                try await rewind(batch.topicPartition, to: position)  // messages from the log's start were dropped
                return false
            }
            logger.error(
                "messages were deleted from the log before they were applied (retention); continuing after them",
                metadata: [
                    "partition": "\(batch.partition)", "position": "\(position)", "logStart": "\(low)",
                    "lost": "\(low - position)",
                ]
            )
            return true
        }
        logger.warning(
            "a batch does not continue from the stored position; reading the partition again from it",
            metadata: ["partition": "\(batch.partition)", "position": "\(position)", "batchStart": "\(first)"]
        )
        try await rewind(batch.topicPartition, to: position)
        return false
    }

    /// Until graceful shutdown, every ``ProjectorConfiguration/watchInterval``: each assigned partition's
    /// lag (its log's end, as its latest fetch reported it, less its position) for `/health`, whether its
    /// log ends before its position (replaced), and, holding no partition, whether the topic's messages
    /// wait unapplied.
    private func watch() async throws {
        var warnedUnassigned = false
        var tick = 0
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: configuration.watchInterval) }
            } catch {
                return
            }
            if Task.isShuttingDownGracefully { return }
            tick += 1
            let assigned = Array(consumer.assignment())
            if assigned.isEmpty {
                guard tick % 5 == 0, let (waiting, stored) = try? await waitingOnTopic() else { continue }
                progress.unassigned(waiting: waiting, stored: stored)
                if progress.isWaitingUnassigned(longerThan: configuration.unassignedAfter), !warnedUnassigned {
                    warnedUnassigned = true
                    logger.error(
                        "this projector holds no partition while messages wait unapplied; it waits for the consumer group to assign it some (a join in progress, or a group wedged by a member that left mid-join)",
                        metadata: [
                            "group": "\(configuration.group)", "topic": "\(configuration.topic)",
                            "waiting": "\(waiting)",
                        ]
                    )
                }
                continue
            }
            warnedUnassigned = false
            guard let ends = try? await consumer.fetchedWatermarks(for: assigned) else { continue }
            var lags: [Int32: Int64] = [:]
            for partition in assigned.sorted() {
                guard let position = positions.get(partition.partition) else { continue }
                guard let high = ends[partition]?.high else {
                    lags[partition.partition] = 0  // not fetched yet
                    continue
                }
                if high < position {
                    try await replacedLog(partition, position: position, logEnd: high)
                } else {
                    lags[partition.partition] = high - position
                }
            }
            progress.observed(lag: lags)
        }
    }

    /// The messages on the topic not applied yet (its partitions' ends less their stored positions),
    /// and the sum of the stored positions.
    private func waitingOnTopic() async throws -> (waiting: Int64, stored: Int64) {
        let partitions = (0..<Int32(try await partitionCount())).map {
            KafkaTopicPartition(topic: configuration.topic, partition: $0)
        }
        let ends = try await consumer.watermarks(for: partitions)
        let stored = try await store.positions(
            group: configuration.group,
            topic: configuration.topic,
            partitions: partitions.map(\.partition)
        )
        var waiting: Int64 = 0
        for partition in partitions {
            waiting += max(0, (ends[partition]?.high ?? 0) - (stored[partition.partition] ?? 0))
        }
        return (waiting, stored.values.reduce(0, +))
    }

    /// The partition's log ends before the stored position: it is not the log the position was stored
    /// for. Reread it from its start (the stored position moves back by compare-and-set), or halt it.
    private func replacedLog(_ partition: KafkaTopicPartition, position: Int64, logEnd: Int64) async throws {
        guard positions.get(partition.partition) == position else { return }  // handled meanwhile
        replacedLogCounter.increment()
        let metadata: Logger.Metadata = [
            "partition": "\(partition.partition)", "storedPosition": "\(position)", "logEnd": "\(logEnd)",
        ]
        switch configuration.onReplacedLog {
        case .reread:
            logger.error(
                "the partition's log ends before the stored position: it was replaced (topic re-created, broker restarted empty); reading it again from its start",
                metadata: metadata
            )
            let marker = PartitionBatch(topic: partition.topic, partition: partition.partition, messages: [])
            let outcome = try await applyRetrying(marker, from: position) { [projection] in
                try await projection.resetPosition(of: marker, from: position, to: 0)
            }
            switch outcome {
            case .applied: try await rewind(partition, to: 0)
            case .fenced(let stored): try await rewind(partition, to: stored)
            }
        case .halt:
            logger.error(
                "the partition's log ends before the stored position: it was replaced (topic re-created, broker restarted empty); the partition is halted until the projector is restarted with --on-replaced-log reread",
                metadata: metadata
            )
            progress.halted(replacedLogOf: partition.partition)
            positions.remove(partition.partition)
            lanes.drop([partition.partition])
            try await consumer.pause([partition])
        }
    }

    /// Applies a batch (or runs `operation` on its partition instead), retrying PostgreSQL failures with
    /// exponential backoff until it succeeds or the service shuts down; then the failure is rethrown and
    /// nothing of it was applied.
    private func applyRetrying(
        _ batch: PartitionBatch,
        from position: Int64,
        operation: (@Sendable () async throws -> ProjectionOutcome)? = nil
    ) async throws -> ProjectionOutcome {
        let operation = operation ?? { [projection] in try await projection.apply(batch, from: position) }
        var delay = configuration.retryDelay
        var attempt = 0
        while true {
            do {
                return try await TransactionDeadline.run(
                    work: "partition \(batch.partition)",
                    timeout: configuration.transactionTimeout,
                    operation
                )
            } catch {
                if Task.isCancelled {
                    logger.warning(
                        "shutdown: abandoned the batch in hand, not committed; it is applied after a restart",
                        metadata: [
                            "partition": "\(batch.partition)", "fromOffset": "\(position)",
                            "messages": "\(batch.messages.count)",
                        ]
                    )
                    throw error
                }
                if Task.isShuttingDownGracefully { throw error }
                attempt += 1
                logger.error(
                    "applying batch failed; retrying",
                    metadata: [
                        "partition": "\(batch.partition)", "attempt": "\(attempt)",
                        "error": "\(error)",
                    ]
                )
                try await Task.sleep(for: delay)
                delay = min(delay * 2, configuration.maximumRetryDelay)
            }
        }
    }
}

/// Applies a consumed batch of one partition in transactions of at most `chunkSize` messages, each
/// from the position the previous one left.
///
/// A chunk may be fenced: another member (one that lost the partition and finished the batch in its
/// hands) moved the stored position. Messages before it are skipped, and the same chunk is applied
/// again from there, so that none at or after it is dropped; the consumer's next messages follow this
/// batch in order, so no seek is needed (a seek would race with batches already taken). A position
/// moved back cannot be continued in order from this batch: it stops there.
struct BatchChunks: Sendable {
    let chunkSize: Int

    init(chunkSize: Int) {
        self.chunkSize = max(1, chunkSize)
    }

    /// Applies messages `0..<count` from `position`; `applyChunk` applies the messages in a range from
    /// a position (in one transaction) and reports the outcome.
    func apply(
        _ count: Int,
        from position: Int64,
        applyChunk: (Range<Int>, Int64) async throws -> ProjectionOutcome
    ) async throws {
        var from = position
        var chunkStart = 0
        while chunkStart < count {
            let range = chunkStart..<min(chunkStart + chunkSize, count)
            switch try await applyChunk(range, from) {
            case .applied(let next, _, _, _, _):
                from = next
                chunkStart = range.upperBound
            case .fenced(let stored):
                guard stored > from else { return }
                from = stored
            }
        }
    }
}

/// The next offset to apply per assigned partition, shared by the assignment hooks and the loop, and
/// the partitions sought back to their position whose first batch from there has not come yet.
final class PartitionPositions: Sendable {
    private struct State {
        var next: [Int32: Int64] = [:]
        var rewinds: [Int32: Int64] = [:]
    }

    private let state = Mutex(State())

    func get(_ partition: Int32) -> Int64? { state.withLock { $0.next[partition] } }
    func set(_ partition: Int32, _ offset: Int64) { state.withLock { $0.next[partition] = offset } }
    func remove(_ partition: Int32) {
        state.withLock {
            $0.next[partition] = nil
            $0.rewinds[partition] = nil
        }
    }

    /// The partition was sought back to `offset`.
    func rewinding(_ partition: Int32, to offset: Int64) { state.withLock { $0.rewinds[partition] = offset } }
    /// Whether the partition was sought back to `offset` and no batch from there has come yet.
    func isRewinding(_ partition: Int32, to offset: Int64) -> Bool {
        state.withLock { $0.rewinds[partition] == offset }
    }
    /// A batch continuing from the position came: the rewind is done.
    func rewound(_ partition: Int32) { _ = state.withLock { $0.rewinds.removeValue(forKey: partition) } }
}
