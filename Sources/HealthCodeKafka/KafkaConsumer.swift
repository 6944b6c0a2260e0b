import CRdkafka
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A Kafka consumer delivering per-partition batches through an `AsyncSequence`, with offsets owned by
/// the caller.
///
/// With a group subscription, assignment and revocation go through the caller's async hooks *before*
/// anything else happens: the assignment hook returns where each new partition starts (for example
/// offsets stored in PostgreSQL) and the wrapper assigns them only then (incrementally with the
/// cooperative-sticky protocol), so no message of a partition is fetched before the caller chose its
/// start. Revocation drops the revoked partitions' buffered batches, then runs the revocation hook; no
/// message of a revoked partition is delivered afterwards. The hooks run inside the iteration of
/// ``batches`` (between two batches), never concurrently with the caller's processing.
///
/// Backpressure: the consumer stops polling while ``KafkaConsumerConfiguration/maxBufferedMessages``
/// wait for the caller, and librdkafka stops fetching when its prefetch queue is full. If the buffer
/// stays full for ``KafkaConsumerConfiguration/pauseWhenFullFor``, the consumer pauses its partitions
/// in librdkafka and polls on, so that a stuck caller still takes part in rebalances. A caller that
/// has no room for more batches says so with ``setDemand(_:)`` and keeps iterating: the hooks still run.
///
/// The consumer is a `Service`: ``run()`` creates the client and polls it on a dedicated thread. On
/// graceful shutdown (or ``close()``) it leaves the group cleanly and ``batches`` ends; on cancellation
/// it destroys the client without leaving (the group notices after the session timeout).
///
/// ```swift
/// try consumer.subscribe(topics: ["events"]) { partitions in
///     try await store.offsets(for: partitions)  // [KafkaTopicPartition: KafkaOffset]
/// } onRevoke: { _ in }
/// for try await batch in consumer.batches {
///     try await store.apply(batch, nextOffset: batch.nextOffset)
/// }
/// ```
public final class KafkaConsumer: Service, Sendable {
    private let configuration: KafkaConsumerConfiguration
    private let properties: [String: String]
    private let logger: Logger
    private let state: Mutex<ConsumerStateMachine>
    private let parker = ThreadParker()

    /// Creates a consumer; validates the configuration but connects to nothing until ``run()``.
    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        var properties = configuration.rdkafkaProperties
        if properties["group.id"] == nil {
            // librdkafka needs a group even for manual assignment; this one is never joined.
            properties["group.id"] = "healthcode-unjoined-\(UUID().uuidString.lowercased())"
        }
        self.configuration = configuration
        self.properties = properties
        self.logger = logger
        self.state = Mutex(
            ConsumerStateMachine(
                maxBufferedMessages: configuration.maxBufferedMessages,
                pauseWhenFullFor: configuration.pauseWhenFullFor
            )
        )
        try RDKafkaClient.validate(properties: properties)
    }

    // MARK: Assignment

    /// Joins the consumer group (``KafkaConsumerConfiguration/groupID``) for `topics`.
    ///
    /// - Parameters:
    ///   - onAssign: runs before any message of the newly assigned partitions is fetched; returns their
    ///     start offsets (missing partitions start at ``KafkaOffset/committed``). If it throws, the
    ///     consumer leaves the group and ``batches`` rethrows the error.
    ///   - onRevoke: runs after the last batch of the revoked partitions was handed out and before they
    ///     are released to other members.
    public func subscribe(
        topics: [String],
        onAssign: @escaping KafkaAssignmentHook = { _ in [:] },
        onRevoke: @escaping KafkaRevocationHook = { _ in }
    ) throws(KafkaError) {
        guard configuration.groupID != nil else {
            throw KafkaError(code: .configuration, isRetriable: false, reason: "subscribing needs a groupID")
        }
        try state.withLock { state throws(KafkaError) in
            try state.setHooks(.init(onAssign: onAssign, onRevoke: onRevoke))
        }
        try enqueue(.subscribe(topics))
    }

    /// Assigns `partitions` manually (no group membership), replacing the previous manual assignment,
    /// each starting at the given offset. Takes effect before any further batch.
    public func assign(_ partitions: [KafkaTopicPartition: KafkaOffset]) throws(KafkaError) {
        try enqueue(.assign(partitions.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }))
    }

    /// Moves the read position of an assigned partition; batches of it fetched before are discarded.
    public func seek(_ partition: KafkaTopicPartition, to offset: KafkaOffset) async throws(KafkaError) {
        _ = try await perform(.seek(partition, offset))
    }

    /// Stops delivering (and fetching) `partitions` until ``resume(_:)``; already fetched batches are kept.
    public func pause(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        _ = try await perform(.pause(partitions))
    }

    /// Resumes paused `partitions`.
    public func resume(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        _ = try await perform(.resume(partitions))
    }

    /// Makes ``batches`` hand out batches only while `hasDemand()` is true. Rebalance hooks run either
    /// way, so a caller with no room for more batches keeps iterating and still takes part in
    /// rebalances. `hasDemand` runs under the consumer's lock: it must be quick and must not call the
    /// consumer. Call ``demandChanged()`` when it may have become true.
    public func setDemand(_ hasDemand: @escaping @Sendable () -> Bool) {
        state.withLock { $0.setDemand(hasDemand) }
    }

    /// Re-checks the demand of ``setDemand(_:)``: a waiting iteration takes a buffered batch if wanted now.
    public func demandChanged() {
        state.withLock { $0.takeIteratorIfWork() }?.resume()
    }

    /// Asks the partitions' leaders for their current watermarks (the high one is the end offset).
    ///
    /// The high watermark is the larger of the leader's ListOffsets answer and the one seen in this
    /// consumer's latest fetch of the partition, which works around brokers whose ListOffsets lags
    /// (Tansu 0.6 answers with the last batch's base offset + 1) for partitions this consumer fetches.
    public func watermarks(
        for partitions: [KafkaTopicPartition],
        timeout: Duration = .seconds(10)
    ) async throws(KafkaError) -> [KafkaTopicPartition: KafkaWatermarks] {
        try await perform(.watermarks(partitions, timeoutMilliseconds: Int32(timeout.milliseconds)))
    }

    /// The watermarks of `partitions` as the consumer's latest fetch response of each reported them,
    /// without asking the broker; partitions not fetched yet are absent. A fetch's high watermark is
    /// exact on every broker, also where ListOffsets lags, and a fetch at an offset past the end
    /// reports it too (some brokers answer such a fetch with no records and no error, so that only its
    /// watermark tells that the position lies beyond the log).
    public func fetchedWatermarks(
        for partitions: [KafkaTopicPartition]
    ) async throws(KafkaError) -> [KafkaTopicPartition: KafkaWatermarks] {
        try await perform(.fetchedWatermarks(partitions))
    }

    /// The consumer group's committed offsets of `partitions` (the offset of the next message to read in
    /// each), as the group coordinator holds them; a partition without a committed offset is absent.
    ///
    /// With `isolation.level=read_committed` (librdkafka's default) offsets that an open transaction is
    /// committing are waited for (up to `timeout`), so the answer is stable. Asks through a short-lived
    /// client of its own, created from this consumer's configuration on a dedicated thread: it works
    /// whether or not the consumer runs, and never holds up its poll thread. Needs
    /// ``KafkaConsumerConfiguration/groupID``.
    public func committedOffsets(
        of partitions: [KafkaTopicPartition],
        timeout: Duration
    ) async throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        guard configuration.groupID != nil else {
            throw KafkaError(code: .configuration, isRetriable: false, reason: "committed offsets need a groupID")
        }
        guard !partitions.isEmpty else { return [:] }
        let properties = properties.merging(["statistics.interval.ms": "0"]) { _, new in new }
        let logger = logger
        let milliseconds = Int32(timeout.milliseconds)
        return try await BlockingThread.run(name: "kafka-committed-offsets") {
            () throws(KafkaError) -> [KafkaTopicPartition: Int64] in
            let client = try RDKafkaClient.make(
                type: RD_KAFKA_CONSUMER,
                properties: properties,
                context: RDKafkaContext(logger: logger, statistics: nil)
            )
            // It never joined the group: nothing to leave.
            defer { client.destroy(flags: RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE) }
            let list = RDKafkaPartitionList(partitions.map { ($0, KafkaOffset.committed.rawValue) })
            let error = rd_kafka_committed(client.pointer, list.pointer, milliseconds)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .query, rdkafka: error) }
            if case .failure(let error) = Self.firstError(in: list) { throw error }
            var offsets: [KafkaTopicPartition: Int64] = [:]
            for index in 0..<Int(list.pointer.pointee.cnt) {
                let element = list.pointer.pointee.elems[index]
                guard element.offset >= 0 else { continue }
                offsets[KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)] =
                    element.offset
            }
            return offsets
        }
    }

    /// Per assigned partition, the messages after the last delivered batch, as of the high watermark
    /// seen by the latest fetch. Partitions with no position or watermark yet are absent.
    public func lag() -> [KafkaTopicPartition: Int64] {
        state.withLock { $0.lag() }
    }

    /// Messages fetched but not yet handed out through ``batches`` (bounded by
    /// ``KafkaConsumerConfiguration/maxBufferedMessages`` plus one poll).
    public var bufferedMessageCount: Int {
        state.withLock { $0.bufferedMessageCount }
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() -> Set<KafkaTopicPartition> {
        state.withLock { $0.assignment }
    }

    /// Leaves the group cleanly and ends ``batches``, as graceful shutdown does.
    public func close() {
        closeNow(graceful: true)
    }

    // MARK: Batches

    /// The fetched messages, as batches of consecutive messages of one partition. Iterate it from one
    /// task. It ends when the consumer closes, and throws if the assignment hook or the consumer failed.
    public var batches: KafkaMessageBatches { KafkaMessageBatches(consumer: self) }

    func nextBatch() async throws -> KafkaMessageBatch? {
        while true {
            if Task.isCancelled { return nil }
            switch state.withLock({ $0.nextIteratorAction() }) {
            case .deliver(let batch, let wake):
                wakeUp(wake)
                return batch
            case .runAssignHook(let hook, let partitions):
                do {
                    let offsets = try await hook(partitions)
                    wakeUp(state.withLock { $0.hookCompleted(offsets: offsets) })
                } catch {
                    logger.error(
                        "Kafka assignment hook failed: the consumer leaves the group",
                        metadata: ["error": "\(error)"]
                    )
                    let (wake, failed) = state.withLock { $0.hookFailed(error) }
                    wakeUp(wake)
                    fail(failed)
                    throw error
                }
            case .runRevokeHook(let hook, let partitions):
                await hook(partitions)
                wakeUp(state.withLock { $0.hookCompleted(offsets: [:]) })
            case .suspend:
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let suspended = state.withLock {
                            $0.suspendIterator(continuation, isCancelled: Task.isCancelled)
                        }
                        if !suspended { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.cancelIterator() }?.resume()
                }
            case .fail(let error):
                throw error
            case .end:
                return nil
            }
        }
    }

    // MARK: Service

    /// Creates the librdkafka client and polls it on a dedicated thread until graceful shutdown (leave the
    /// group) or cancellation (destroy without leaving). Throws the failure that closed the consumer, if any.
    public func run() async throws {
        let context = RDKafkaContext(
            logger: logger,
            statistics: configuration.statisticsInterval.map { _ in KafkaStatistics(clientID: configuration.clientID) },
            onRebalance: { [self] client, error, partitions in
                handleRebalance(client: client, error: error, partitions: partitions)
            }
        )
        let client: RDKafkaClient
        do {
            client = try RDKafkaClient.make(type: RD_KAFKA_CONSUMER, properties: properties, context: context)
        } catch {
            _ = state.withLock { $0.fail(error) }
            closeNow(graceful: false)
            _ = state.withLock { $0.finish() }
            throw error
        }
        rd_kafka_poll_set_consumer(client.pointer)
        let handle = ConsumerHandle(client: client, queue: rd_kafka_queue_get_consumer(client.pointer)!)
        state.withLock { $0.start(handle) }
        let failure: (any Error)? = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withUnsafeContinuation { (finished: UnsafeContinuation<(any Error)?, Never>) in
                    BlockingThread.start(name: "kafka-consumer-poll") {
                        finished.resume(returning: self.pollLoop(handle: handle))
                    }
                }
            } onGracefulShutdown: {
                self.closeNow(graceful: true)
            }
        } onCancel: {
            self.closeNow(graceful: false)
        }
        if let failure { throw failure }
    }

    // MARK: Poll thread

    /// Polls until close, then leaves the group (graceful) and destroys the client.
    private func pollLoop(handle: ConsumerHandle) -> (any Error)? {
        let client = handle.client.pointer
        let capacity = max(1, configuration.maxPollMessages)
        let messages = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
        defer { messages.deallocate() }
        logger.debug("Kafka consumer started", metadata: ["kafka.client": "\(configuration.clientID)"])
        while true {
            switch state.withLock({ $0.nextPollThreadAction() }) {
            case .execute(let pending):
                execute(pending, client: client)
            case .park(let timeout):
                if !parker.park(timeout: timeout) { state.withLock { $0.parkTimedOut() } }
            case .holdFetching(let partitions):
                setFetching(partitions, paused: true, client: client)
                state.withLock { $0.fetchingHeld(partitions) }
            case .releaseFetching(let partitions):
                setFetching(partitions, paused: false, client: client)
                state.withLock { $0.fetchingReleased(partitions) }
            case .poll(let handle):
                // Wait (interruptibly: commands yield the queue) for a first message, then take what is
                // already there without waiting: low latency when idle, full batches under load.
                var count = max(0, rd_kafka_consume_batch_queue(handle.queue, 500, messages, 1))
                if count == 1, capacity > 1 {
                    count += max(0, rd_kafka_consume_batch_queue(handle.queue, 0, messages + 1, capacity - 1))
                }
                let batches = makeBatches(messages, count: count, client: client)
                state.withLock { $0.received(batches) }?.resume()
            case .close(let graceful):
                if graceful {
                    let error = rd_kafka_consumer_close(client)
                    if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                        logger.warning(
                            "Kafka consumer close failed",
                            metadata: ["kafka.error": "\(KafkaError(code: .closed, rdkafka: error))"]
                        )
                    }
                }
                rd_kafka_queue_destroy(handle.queue)
                handle.client.destroy(flags: graceful ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
                logger.debug("Kafka consumer stopped", metadata: ["kafka.client": "\(configuration.clientID)"])
                return state.withLock { $0.finish() }
            }
        }
    }

    /// Pauses or resumes fetching `partitions` for the buffer's sake (not the caller's) and logs it; a
    /// failure is logged, not retried.
    private func setFetching(_ partitions: [KafkaTopicPartition], paused: Bool, client: OpaquePointer) {
        let metadata: Logger.Metadata = ["kafka.partitions": "\(partitions.count)"]
        if case .failure(let error) = perform(paused ? .pause(partitions) : .resume(partitions), client: client) {
            logger.warning(
                paused ? "Kafka consumer could not pause fetching" : "Kafka consumer could not resume fetching",
                metadata: metadata.merging(["kafka.error": "\(error)"]) { _, new in new }
            )
        } else if paused {
            logger.info(
                "Kafka consumer buffer stayed full: fetching paused, polling on for rebalances",
                metadata: metadata
            )
        } else {
            logger.info("Kafka consumer fetching resumed", metadata: metadata)
        }
    }

    /// Copies the messages into per-partition batches and destroys them.
    private func makeBatches(
        _ messages: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>,
        count: Int,
        client: OpaquePointer
    ) -> [KafkaMessageBatch] {
        guard count > 0 else { return [] }
        var builders: [KafkaBatchBuilder] = []
        var current = -1
        var currentTopic: OpaquePointer?
        var currentPartition: Int32 = -1
        for index in 0..<count {
            guard let message = messages[index] else { continue }
            defer { rd_kafka_message_destroy(message) }
            guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                handleConsumerError(message)
                continue
            }
            if message.pointee.rkt != currentTopic || message.pointee.partition != currentPartition {
                let topicPartition = KafkaTopicPartition(
                    topic: String(cString: rd_kafka_topic_name(message.pointee.rkt)),
                    partition: message.pointee.partition
                )
                if let existing = builders.firstIndex(where: { $0.topicPartition == topicPartition }) {
                    current = existing
                } else {
                    builders.append(KafkaBatchBuilder(topicPartition: topicPartition, capacity: count))
                    current = builders.count - 1
                }
                currentTopic = message.pointee.rkt
                currentPartition = message.pointee.partition
            }
            builders[current].append(message)
        }
        return builders.map { builder in
            var low: Int64 = -1
            var high: Int64 = -1
            let error = rd_kafka_get_watermark_offsets(
                client,
                builder.topicPartition.topic,
                builder.topicPartition.partition,
                &low,
                &high
            )
            return builder.build(highWatermark: error == RD_KAFKA_RESP_ERR_NO_ERROR ? high : -1)
        }
    }

    private func handleConsumerError(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) }
        let error = KafkaError(
            code: .consumption,
            rdkafka: message.pointee.err,
            topic: topic,
            partition: topic == nil ? nil : message.pointee.partition
        )
        if message.pointee.err == RD_KAFKA_RESP_ERR__FATAL {
            logger.critical("Kafka consumer failed", metadata: ["kafka.error": "\(error)"])
            let (wake, failed, iterator) = state.withLock { $0.fail(error) }
            wakeUp(wake)
            fail(failed)
            iterator?.resume()
        } else {
            logger.warning("Kafka consumer error", metadata: ["kafka.error": "\(error)"])
        }
    }

    /// librdkafka's rebalance callback (poll thread, inside a poll call): waits for the caller's hook,
    /// then assigns with the hook's offsets (or revokes), incrementally for the cooperative protocol.
    private func handleRebalance(
        client: OpaquePointer,
        error: rd_kafka_resp_err_t,
        partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    ) {
        // Make the poll call return right after this callback: the messages it already took are all
        // from before the rebalance, and are filtered against the new assignment.
        rd_kafka_yield(client)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE"
        let event: RebalanceEvent
        switch error {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS: event = .assign(partitions.topicPartitions)
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS: event = .revoke(partitions.topicPartitions)
        default:
            logger.warning(
                "Kafka rebalance failed",
                metadata: ["kafka.error": "\(KafkaError(code: .rebalance, rdkafka: error))"]
            )
            rd_kafka_assign(client, nil)
            return
        }
        logger.debug("Kafka rebalance", metadata: ["kafka.rebalance": "\(event)"])
        var offsets: [KafkaTopicPartition: KafkaOffset] = [:]
        if case .waitForHook(let iterator) = state.withLock({ $0.rebalanceStarted(event) }) {
            iterator?.resume()
            waiting: while true {
                switch state.withLock({ $0.rebalanceProgress() }) {
                case .park: parker.park()
                case .execute(let pending): execute(pending, client: client)
                case .apply(let result):
                    offsets = result
                    break waiting
                case .applyDefault: break waiting
                }
            }
        }
        var failure: KafkaError?
        switch event {
        case .assign:
            for index in 0..<Int(partitions.pointee.cnt) {
                let element = partitions.pointee.elems + index
                let key = KafkaTopicPartition(
                    topic: String(cString: element.pointee.topic),
                    partition: element.pointee.partition
                )
                element.pointee.offset = offsets[key]?.rawValue ?? KafkaOffset.committed.rawValue
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(client, partitions) {
                    failure = KafkaError(code: .rebalance, consuming: error)
                }
            } else {
                let error = rd_kafka_assign(client, partitions)
                if error != RD_KAFKA_RESP_ERR_NO_ERROR { failure = KafkaError(code: .rebalance, rdkafka: error) }
            }
            // librdkafka keeps a partition's pause (the caller's or the full buffer's) across its revocation
            // and a new assignment to this member, while the state machine starts every assigned partition
            // fetching: resume them here, so that both agree; a buffer still full holds them again.
            if failure == nil {
                let error = rd_kafka_resume_partitions(client, partitions)
                if error != RD_KAFKA_RESP_ERR_NO_ERROR { failure = KafkaError(code: .rebalance, rdkafka: error) }
            }
        case .revoke:
            if cooperative {
                if let error = rd_kafka_incremental_unassign(client, partitions) {
                    failure = KafkaError(code: .rebalance, consuming: error)
                }
            } else {
                let error = rd_kafka_assign(client, nil)
                if error != RD_KAFKA_RESP_ERR_NO_ERROR { failure = KafkaError(code: .rebalance, rdkafka: error) }
            }
        }
        if let failure {
            logger.error("Kafka rebalance could not be applied", metadata: ["kafka.error": "\(failure)"])
        }
        state.withLock { $0.rebalanceApplied(event, offsets: offsets) }
    }

    /// Performs commands on the poll thread and answers their callers.
    private func execute(_ pending: [PendingConsumerCommand], client: OpaquePointer) {
        for item in pending {
            let result = perform(item.command, client: client)
            let succeeded = if case .success = result { true } else { false }
            let iterator = state.withLock { state in
                state.executed(item.command, succeeded: succeeded)
                return state.takeIteratorIfWork()
            }
            iterator?.resume()
            if let continuation = item.continuation {
                continuation.resume(returning: result)
            } else if case .failure(let error) = result {
                logger.error("Kafka consumer command failed", metadata: ["kafka.error": "\(error)"])
                let (wake, failed, iterator) = state.withLock { $0.fail(error) }
                wakeUp(wake)
                fail(failed)
                iterator?.resume()
            }
        }
    }

    private func perform(_ command: ConsumerCommand, client: OpaquePointer) -> ConsumerCommandResult {
        switch command {
        case .subscribe(let topics):
            let list = RDKafkaPartitionList(
                topics.map { (KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), Int64(0)) }
            )
            let error = rd_kafka_subscribe(client, list.pointer)
            return error == RD_KAFKA_RESP_ERR_NO_ERROR
                ? .success([:]) : .failure(KafkaError(code: .rebalance, rdkafka: error))
        case .assign(let partitions):
            let list = RDKafkaPartitionList(partitions.map { ($0.0, $0.1.rawValue) })
            let error = rd_kafka_assign(client, list.pointer)
            return error == RD_KAFKA_RESP_ERR_NO_ERROR
                ? .success([:]) : .failure(KafkaError(code: .rebalance, rdkafka: error))
        case .seek(let partition, let offset):
            let list = RDKafkaPartitionList([(partition, offset.rawValue)])
            if let error = rd_kafka_seek_partitions(client, list.pointer, 10_000) {
                return .failure(
                    KafkaError(code: .query, consuming: error, topic: partition.topic, partition: partition.partition)
                )
            }
            return Self.firstError(in: list) ?? .success([:])
        case .pause(let partitions):
            let list = RDKafkaPartitionList(partitions.map { ($0, Int64(0)) })
            let error = rd_kafka_pause_partitions(client, list.pointer)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(code: .query, rdkafka: error)) }
            return Self.firstError(in: list) ?? .success([:])
        case .resume(let partitions):
            let list = RDKafkaPartitionList(partitions.map { ($0, Int64(0)) })
            let error = rd_kafka_resume_partitions(client, list.pointer)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(code: .query, rdkafka: error)) }
            return Self.firstError(in: list) ?? .success([:])
        case .watermarks(let partitions, let timeout):
            var result: [KafkaTopicPartition: KafkaWatermarks] = [:]
            for partition in partitions {
                var low: Int64 = -1
                var high: Int64 = -1
                let error = rd_kafka_query_watermark_offsets(
                    client,
                    partition.topic,
                    partition.partition,
                    &low,
                    &high,
                    timeout
                )
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    return .failure(
                        KafkaError(code: .query, rdkafka: error, topic: partition.topic, partition: partition.partition)
                    )
                }
                // Brokers whose ListOffsets lags behind their fetch responses (Tansu 0.6 answers with the
                // last batch's base offset + 1): the fetched high watermark, when newer, is the true end.
                if let fetched = Self.fetchedWatermarks(of: partition, client: client), fetched.high > high {
                    high = fetched.high
                }
                result[partition] = KafkaWatermarks(low: low, high: high)
            }
            return .success(result)
        case .fetchedWatermarks(let partitions):
            var result: [KafkaTopicPartition: KafkaWatermarks] = [:]
            for partition in partitions {
                result[partition] = Self.fetchedWatermarks(of: partition, client: client)
            }
            return .success(result)
        }
    }

    /// The partition's watermarks as the latest fetch response reported them (no broker request);
    /// `nil` before its first fetch.
    private static func fetchedWatermarks(of partition: KafkaTopicPartition, client: OpaquePointer) -> KafkaWatermarks?
    {
        var low: Int64 = -1
        var high: Int64 = -1
        let error = rd_kafka_get_watermark_offsets(client, partition.topic, partition.partition, &low, &high)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { return nil }
        return KafkaWatermarks(low: low, high: high)
    }

    private static func firstError(in list: borrowing RDKafkaPartitionList) -> ConsumerCommandResult? {
        for index in 0..<Int(list.pointer.pointee.cnt) {
            let element = list.pointer.pointee.elems[index]
            if element.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                return .failure(
                    KafkaError(
                        code: .query,
                        rdkafka: element.err,
                        topic: String(cString: element.topic),
                        partition: element.partition
                    )
                )
            }
        }
        return nil
    }

    // MARK: Helpers

    private func enqueue(_ command: ConsumerCommand) throws(KafkaError) {
        let (wake, failed) = state.withLock { $0.enqueue(PendingConsumerCommand(command: command, continuation: nil)) }
        wakeUp(wake)
        if failed != nil { throw .closed("the consumer is closing") }
    }

    private func perform(_ command: ConsumerCommand) async throws(KafkaError) -> [KafkaTopicPartition: KafkaWatermarks]
    {
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<ConsumerCommandResult, Never>) in
            let (wake, failed) = state.withLock {
                $0.enqueue(PendingConsumerCommand(command: command, continuation: continuation))
            }
            wakeUp(wake)
            if failed != nil { continuation.resume(returning: .failure(.closed("the consumer is closing"))) }
        }
        return try result.get()
    }

    private func closeNow(graceful: Bool) {
        let (wake, failed, iterator) = state.withLock { $0.close(graceful: graceful) }
        wakeUp(wake)
        fail(failed)
        iterator?.resume()
    }

    private func fail(_ commands: [PendingConsumerCommand]) {
        for command in commands {
            command.continuation?.resume(returning: .failure(.closed("the consumer is closing")))
        }
    }

    private func wakeUp(_ wake: ConsumerStateMachine.Wake) {
        if case .unpark = wake { parker.unpark() }
    }
}

/// The batches of a ``KafkaConsumer``; see ``KafkaConsumer/batches``.
public struct KafkaMessageBatches: AsyncSequence, Sendable {
    public typealias Element = KafkaMessageBatch

    let consumer: KafkaConsumer

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer)
    }

    /// Iterates the consumer's batches.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: KafkaConsumer

        public mutating func next() async throws -> KafkaMessageBatch? {
            try await consumer.nextBatch()
        }
    }
}

/// Accumulates one partition's messages of a poll into a batch (poll thread).
struct KafkaBatchBuilder {
    let topicPartition: KafkaTopicPartition
    private var storage: [UInt8] = []
    private var records: [KafkaMessageBatch.Record] = []
    private var headerLists: [[KafkaHeader]] = []

    init(topicPartition: KafkaTopicPartition, capacity: Int) {
        self.topicPartition = topicPartition
        records.reserveCapacity(capacity)
    }

    mutating func append(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let keyStart = storage.count
        var keyCount = -1
        if let key = message.pointee.key {
            keyCount = message.pointee.key_len
            storage.append(contentsOf: UnsafeRawBufferPointer(start: key, count: keyCount))
        }
        let valueStart = storage.count
        let valueCount = message.pointee.payload == nil ? 0 : message.pointee.len
        if let payload = message.pointee.payload {
            storage.append(contentsOf: UnsafeRawBufferPointer(start: payload, count: valueCount))
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        records.append(
            .init(
                offset: message.pointee.offset,
                timestamp: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : timestamp,
                keyStart: keyStart,
                keyCount: keyCount,
                valueStart: valueStart,
                valueCount: valueCount,
                headers: readHeaders(message)
            )
        )
    }

    private mutating func readHeaders(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> Int {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return -1 }
        var headers: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            headers.append(KafkaHeader(key: name.map { String(cString: $0) } ?? "", value: bytes))
            index += 1
        }
        guard !headers.isEmpty else { return -1 }
        headerLists.append(headers)
        return headerLists.count - 1
    }

    func build(highWatermark: Int64) -> KafkaMessageBatch {
        KafkaMessageBatch(
            topicPartition: topicPartition,
            highWatermark: highWatermark,
            storage: storage,
            records: records,
            headerLists: headerLists
        )
    }
}
