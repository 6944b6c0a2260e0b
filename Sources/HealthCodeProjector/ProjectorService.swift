import HealthCodeCore
import HealthCodeKafka
import HealthCodePostgres
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
/// A batch that meets a moved position (another member applied it) is dropped and the partition
/// continues from the stored position. A batch that fails on PostgreSQL is retried with backoff
/// until it applies; the consumer's buffer fills meanwhile and fetching pauses (backpressure).
///
/// Partitions are applied concurrently, each in order on its own lane (``PartitionLanes``): one
/// partition's transaction waits on PostgreSQL while another's events are decoded and folded.
public struct ProjectorService: Service {
    private let consumer: KafkaConsumer
    private let projection: Projection
    private let store: ProjectionStore
    private let configuration: ProjectorConfiguration
    private let logger: Logger
    private let positions = PartitionPositions()
    private let progress: ProjectorProgress
    private let lanes: PartitionLanes

    public init(
        consumer: KafkaConsumer,
        projection: Projection,
        store: ProjectionStore,
        configuration: ProjectorConfiguration,
        progress: ProjectorProgress,
        logger: Logger
    ) {
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
        try consumer.subscribe(
            topics: [topic],
            onAssign: { [store, positions, logger] assigned in
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
            },
            onRevoke: { [positions, progress, lanes, logger] revoked in
                lanes.drop(Set(revoked.map(\.partition)))
                for partition in revoked {
                    positions.remove(partition.partition)
                    progress.revoked(partition: partition.partition)
                }
                logger.info("partitions revoked", metadata: ["partitions": "\(revoked.map(\.partition).sorted())"])
            }
        )
        // While the lanes are full the consumer hands out nothing, but this loop keeps iterating it, so
        // that rebalances are served even when every lane waits on PostgreSQL.
        consumer.setDemand { [lanes] in lanes.hasRoom }
        // The consumer runs inside this service, not beside it in the group: graceful shutdown closes
        // it (leaving the group), the batches in hand are finished, and both end together. As a service
        // of its own it would end before its turn in the group's shutdown, which fails the group.
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { lanesGroup in
                lanesGroup.addTask { try await consumer.run() }
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
            case .fenced(let stored):
                logger.warning(
                    "stored position moved by another consumer; skipping to it",
                    metadata: ["partition": "\(batch.partition)", "expected": "\(from)", "stored": "\(stored)"]
                )
                positions.set(batch.partition, stored)
            }
            return outcome
        }
    }

    /// Applies a batch, retrying PostgreSQL failures with exponential backoff until it succeeds or
    /// the service shuts down; then the failure is rethrown and nothing of the batch was applied.
    private func applyRetrying(_ batch: PartitionBatch, from position: Int64) async throws -> ProjectionOutcome {
        var delay = configuration.retryDelay
        var attempt = 0
        while true {
            do {
                return try await TransactionDeadline.run(
                    work: "partition \(batch.partition)",
                    timeout: configuration.transactionTimeout
                ) { [projection] in
                    try await projection.apply(batch, from: position)
                }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { throw error }
                attempt += 1
                logger.error(
                    "applying batch failed; retrying",
                    metadata: [
                        "partition": "\(batch.partition)", "attempt": "\(attempt)",
                        "error": "\(SafeErrorDescription(error))",
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

/// The next offset to apply per assigned partition, shared by the assignment hooks and the loop.
final class PartitionPositions: Sendable {
    private let positions = Mutex<[Int32: Int64]>([:])

    func get(_ partition: Int32) -> Int64? { positions.withLock { $0[partition] } }
    func set(_ partition: Int32, _ offset: Int64) { positions.withLock { $0[partition] = offset } }
    func remove(_ partition: Int32) { _ = positions.withLock { $0.removeValue(forKey: partition) } }
}
