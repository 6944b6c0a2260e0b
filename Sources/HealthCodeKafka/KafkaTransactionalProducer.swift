import CRdkafka
import Logging
import Synchronization

/// A transactional Kafka producer (`transactional.id`, idempotent, `acks=all`): the messages it sends
/// and the consumer offsets it commits inside one transaction become visible to `read_committed`
/// consumers together on commit, or not at all.
///
/// A consume–transform–produce loop commits its input offsets with its output, so that each output is
/// seen exactly once downstream:
///
/// ```swift
/// let producer = try KafkaTransactionalProducer(
///     configuration: configuration,
///     transactionalID: "ingest-0",
///     logger: logger
/// )
/// try await producer.initializeTransactions(timeout: .seconds(30))
/// for try await batch in consumer.batches {
///     try producer.beginTransaction()
///     try await producer.send(validated(batch))
///     try await producer.sendOffsets([batch.topicPartition: batch.nextOffset], group: "ingest", timeout: .seconds(30))
///     try await producer.commitTransaction(timeout: .seconds(30))
/// }
/// ```
///
/// Every error is a ``KafkaError`` saying what to do next: ``KafkaError/isRetriable`` — make the same
/// call again (a commit that timed out resumes); ``KafkaError/requiresAbort`` — abort the transaction
/// and do it again from the start (rewind the input to the last committed offsets); ``KafkaError/isFatal``
/// — the producer was fenced by a newer one with the same transactional id (or broke its idempotence):
/// ``close()`` it and create a new one, which aborts the open transaction when it initializes.
///
/// Calls that wait for the cluster run on dedicated threads, never on Swift's cooperative pool. A
/// dedicated poll thread serves librdkafka's error and statistics callbacks and destroys the client
/// after ``close()``. Transaction calls must not overlap (librdkafka fails the second with `_CONFLICT`).
public final class KafkaTransactionalProducer: Sendable {
    private let handle: TransactionalProducerHandle

    /// Creates the librdkafka client for `transactionalID` and starts its poll thread; contacts nothing
    /// until ``initializeTransactions(timeout:)``.
    ///
    /// The configuration's properties are used with `transactional.id`, `enable.idempotence=true` and
    /// `acks=all`. ``KafkaProducerConfiguration/maxInFlightMessages`` bounds librdkafka's queue
    /// (`queue.buffering.max.messages`): ``send(_:)`` waits for room when it is full.
    /// `transaction.timeout.ms` (how long the coordinator lets a transaction stay open before aborting
    /// it) defaults to the larger of 60 s and ``KafkaProducerConfiguration/deliveryTimeout``, which
    /// librdkafka requires not to exceed it. Raw ``KafkaProducerConfiguration/properties`` override
    /// both defaults. ``KafkaProducerConfiguration/shutdownFlushTimeout`` and
    /// ``KafkaProducerConfiguration/fatalErrorRebuildDelay`` do not apply: a transaction's messages are
    /// flushed by its commit, and a fatal error is the caller's to handle (``KafkaError/isFatal``).
    public init(
        configuration: KafkaProducerConfiguration,
        transactionalID: String,
        logger: Logger
    ) throws(KafkaError) {
        var logger = logger
        logger[metadataKey: "kafka.transactional_id"] = .string(transactionalID)
        let properties = Self.rdkafkaProperties(configuration: configuration, transactionalID: transactionalID)
        let context = RDKafkaContext(
            logger: logger,
            statistics: configuration.statisticsInterval.map { _ in KafkaStatistics(clientID: configuration.clientID) }
        )
        let client = try RDKafkaClient.make(type: RD_KAFKA_PRODUCER, properties: properties, context: context)
        handle = TransactionalProducerHandle(client: client, logger: logger)
        let handle = handle
        BlockingThread.start(name: "kafka-txn-poll") { handle.pollLoop() }
    }

    deinit {
        handle.close()
    }

    /// The librdkafka properties of a transactional producer with `configuration`.
    static func rdkafkaProperties(
        configuration: KafkaProducerConfiguration,
        transactionalID: String
    ) -> [String: String] {
        var properties = configuration.rdkafkaProperties
        properties["transactional.id"] = transactionalID
        properties["enable.idempotence"] = "true"
        properties["acks"] = "all"
        let raw = configuration.properties
        if raw["queue.buffering.max.messages"] == nil {
            properties["queue.buffering.max.messages"] = String(
                min(max(1, configuration.maxInFlightMessages), Int(Int32.max))
            )
        }
        if raw["transaction.timeout.ms"] == nil {
            properties["transaction.timeout.ms"] = max(configuration.deliveryTimeout, .seconds(60)).rdkafkaMilliseconds
        }
        return properties
    }

    // MARK: Transactions

    /// Registers the transactional id with its transaction coordinator (once, before the first
    /// transaction). Fences any earlier producer with the same transactional id: its open transaction
    /// is aborted and its further calls fail fatally.
    ///
    /// A retriable error (for example a timeout) may be retried by calling this again.
    public func initializeTransactions(timeout: Duration) async throws(KafkaError) {
        let milliseconds = Int32(timeout.milliseconds)
        try await blocking("initialize transactions") { client throws(KafkaError) in
            if let error = rd_kafka_init_transactions(client, milliseconds) {
                throw KafkaError(code: .transaction, transactional: error)
            }
        }
    }

    /// Begins a transaction (local: no request is sent). Throws if one is already open or the last one
    /// failed and was not aborted.
    public func beginTransaction() throws(KafkaError) {
        try handle.withClient { client throws(KafkaError) in
            if let error = rd_kafka_begin_transaction(client) {
                throw KafkaError(code: .transaction, transactional: error)
            }
            handle.setInTransaction(true)
        }
    }

    /// Queues `messages` in the open transaction, in order; they are written when the transaction is
    /// committed (or earlier) and discarded if it is aborted. Does not wait for the broker: a message
    /// that cannot be delivered fails the transaction, and ``commitTransaction(timeout:)`` then throws
    /// an error that requires an abort.
    ///
    /// When librdkafka's queue is full, waits for room on a dedicated thread. Throws
    /// ``KafkaError/Code-swift.struct/enqueue`` if librdkafka refuses a message (unknown partition,
    /// message too large, the transaction failed — ``KafkaError/requiresAbort`` — or the producer is
    /// fenced — ``KafkaError/isFatal``); the messages before it are in the transaction, so abort it
    /// unless a partial batch is acceptable.
    public func send(_ messages: [KafkaOutgoingMessage]) async throws(KafkaError) {
        let handle = handle
        let queued = try handle.withClient { client throws(KafkaError) in
            try handle.enqueue(messages, from: 0, client: client, waitForRoom: false)
        }
        guard queued < messages.count else { return }
        _ = try await blocking("send") { client throws(KafkaError) in
            try handle.enqueue(messages, from: queued, client: client, waitForRoom: true)
        }
    }

    /// Commits `offsets` for the consumer group `group` as part of the transaction: they become the
    /// group's committed offsets if and only if the transaction commits.
    ///
    /// - Parameter offsets: per input partition, the offset of the next message to read (one past the
    ///   last one processed), as ``KafkaMessageBatch/nextOffset`` gives it. Negative offsets are ignored.
    public func sendOffsets(
        _ offsets: [KafkaTopicPartition: Int64],
        group: String,
        timeout: Duration
    ) async throws(KafkaError) {
        let milliseconds = Int32(timeout.milliseconds)
        let sorted = offsets.sorted { $0.key < $1.key }
        try await blocking("send offsets") { client throws(KafkaError) in
            let list = RDKafkaPartitionList(sorted.map { ($0.key, $0.value) })
            let metadata = rd_kafka_consumer_group_metadata_new(group)
            defer { rd_kafka_consumer_group_metadata_destroy(metadata) }
            if let error = rd_kafka_send_offsets_to_transaction(client, list.pointer, metadata, milliseconds) {
                throw KafkaError(code: .transaction, transactional: error)
            }
        }
    }

    /// Commits the transaction: flushes its messages, then has the coordinator make them and its
    /// offsets visible to `read_committed` consumers.
    ///
    /// A retriable error (the commit timed out) leaves the outcome pending: call this again to resume
    /// and learn it. An error that requires an abort means the transaction failed (a message was not
    /// delivered, for example): abort it and do it again.
    public func commitTransaction(timeout: Duration) async throws(KafkaError) {
        let milliseconds = Int32(timeout.milliseconds)
        let handle = handle
        try await blocking("commit transaction") { client throws(KafkaError) in
            if let error = rd_kafka_commit_transaction(client, milliseconds) {
                throw KafkaError(code: .transaction, transactional: error)
            }
            handle.setInTransaction(false)
        }
    }

    /// Aborts the transaction: its queued messages are discarded, and what was written of it is never
    /// read by `read_committed` consumers; its offsets are not committed.
    ///
    /// A retriable error (the abort timed out) may be retried by calling this again.
    public func abortTransaction(timeout: Duration) async throws(KafkaError) {
        let milliseconds = Int32(timeout.milliseconds)
        let handle = handle
        try await blocking("abort transaction") { client throws(KafkaError) in
            if let error = rd_kafka_abort_transaction(client, milliseconds) {
                throw KafkaError(code: .transaction, transactional: error)
            }
            handle.setInTransaction(false)
        }
    }

    /// Closes the producer: every later call throws ``KafkaError/Code-swift.struct/closed``. The poll
    /// thread destroys the client once no call uses it any more. An open transaction is not committed:
    /// the coordinator aborts it when a producer with the same transactional id initializes, or after
    /// the transaction timeout. Closing again does nothing.
    public func close() {
        handle.close()
    }

    /// Closes the producer and returns once its client is destroyed (tests: before the mock cluster goes).
    func closeAndWait() async {
        await handle.closeAndWait()
    }

    /// Runs `body` with the client on a dedicated thread.
    private func blocking<Result: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (OpaquePointer) throws(KafkaError) -> Result
    ) async throws(KafkaError) -> Result {
        let handle = handle
        return try await BlockingThread.run(name: "kafka-txn \(operation)") { () throws(KafkaError) -> Result in
            try handle.withClient(body)
        }
    }
}

/// A transactional producer's client, shared by its calls and its poll thread. The poll thread destroys
/// the client once the producer is closed and no call uses it.
final class TransactionalProducerHandle: Sendable {
    private struct State {
        var closed = false
        /// Calls using the client now.
        var users = 0
        /// A transaction was begun and not yet committed or aborted.
        var inTransaction = false
        var destroyed = false
        /// Waiting for the client's destruction.
        var waiters: [UnsafeContinuation<Void, Never>] = []
    }

    private let client: RDKafkaClient
    private let logger: Logger
    private let state = Mutex(State())

    init(client: RDKafkaClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Runs `body` with the client, which is not destroyed meanwhile; throws if the producer is closed.
    func withClient<Result>(_ body: (OpaquePointer) throws(KafkaError) -> Result) throws(KafkaError) -> Result {
        try state.withLock { state throws(KafkaError) in
            guard !state.closed else { throw KafkaError.closed("the transactional producer is closed") }
            state.users += 1
        }
        defer { state.withLock { $0.users -= 1 } }
        return try body(client.pointer)
    }

    func setInTransaction(_ value: Bool) {
        state.withLock { $0.inTransaction = value }
    }

    func close() {
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            // Cuts the poll thread's wait short. The client is still alive: the poll thread destroys it
            // only after seeing `closed`, which it cannot before this lock is released.
            rd_kafka_yield(client.pointer)
        }
    }

    func closeAndWait() async {
        close()
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let destroyed = state.withLock { state in
                if !state.destroyed { state.waiters.append(continuation) }
                return state.destroyed
            }
            if destroyed { continuation.resume() }
        }
    }

    /// Serves callbacks until the producer is closed and unused, then destroys the client.
    func pollLoop() {
        while true {
            rd_kafka_poll(client.pointer, 100)
            if state.withLock({ $0.closed && $0.users == 0 }) { break }
        }
        let unsent = rd_kafka_outq_len(client.pointer)
        if unsent > 0 {
            logger.debug(
                "Kafka transactional producer closed with unsent messages",
                metadata: ["kafka.events": "\(unsent)"]
            )
        }
        client.destroy()
        let waiters = state.withLock { state in
            state.destroyed = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Queues `messages[start...]` in order and returns the index of the first message not queued: a full
    /// queue stops it there, unless `waitForRoom` (dedicated threads only), when it polls and retries.
    func enqueue(
        _ messages: [KafkaOutgoingMessage],
        from start: Int,
        client: OpaquePointer,
        waitForRoom: Bool
    ) throws(KafkaError) -> Int {
        var index = start
        while index < messages.count {
            let message = messages[index]
            guard let error = Self.produce(message, client: client) else {
                index += 1
                continue
            }
            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_error_destroy(error)
                guard waitForRoom else { return index }
                if state.withLock({ $0.closed }) { throw KafkaError.closed("the transactional producer is closed") }
                rd_kafka_poll(client, 10)
                continue
            }
            let inTransaction = state.withLock { $0.inTransaction }
            var failure = KafkaError(
                code: .enqueue,
                transactional: error,
                topic: message.topic,
                partition: message.partition
            )
            if failure.rdkafkaCode == RD_KAFKA_RESP_ERR__STATE.rawValue {
                // librdkafka refuses messages outside a transaction, and in a transaction that failed.
                failure.requiresAbort = inTransaction
                failure.reason +=
                    inTransaction
                    ? " (the transaction failed: abort it)" : " (no transaction is open: call beginTransaction())"
            }
            failure.reason += " (\(index) of \(messages.count) messages queued)"
            throw failure
        }
        return index
    }

    /// Queues one message (key and payload copied); `nil` on success, else librdkafka's error (owned by the caller).
    private static func produce(_ message: KafkaOutgoingMessage, client: OpaquePointer) -> OpaquePointer? {
        // Header names and values, each NUL-terminated name followed by its value, in one buffer.
        var headerBytes: [UInt8] = []
        for header in message.headers {
            headerBytes.append(contentsOf: header.key.utf8)
            headerBytes.append(0)
            headerBytes.append(contentsOf: header.value ?? [])
        }
        return message.topic.withCString { topic in
            message.value.withUnsafeBytes { value in
                (message.key ?? []).withUnsafeBytes { key in
                    headerBytes.withUnsafeBytes { headerBuffer in
                        var arguments: [rd_kafka_vu_t] = []
                        arguments.reserveCapacity(5 + message.headers.count)
                        var topicArgument = rd_kafka_vu_t()
                        topicArgument.vtype = RD_KAFKA_VTYPE_TOPIC
                        topicArgument.u.cstr = topic
                        arguments.append(topicArgument)
                        var partition = rd_kafka_vu_t()
                        partition.vtype = RD_KAFKA_VTYPE_PARTITION
                        partition.u.i32 = message.partition ?? RD_KAFKA_PARTITION_UA
                        arguments.append(partition)
                        var flags = rd_kafka_vu_t()
                        flags.vtype = RD_KAFKA_VTYPE_MSGFLAGS
                        flags.u.i = RD_KAFKA_MSG_F_COPY
                        arguments.append(flags)
                        var payload = rd_kafka_vu_t()
                        payload.vtype = RD_KAFKA_VTYPE_VALUE
                        payload.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                        payload.u.mem.size = value.count
                        arguments.append(payload)
                        if message.key != nil {
                            var keyArgument = rd_kafka_vu_t()
                            keyArgument.vtype = RD_KAFKA_VTYPE_KEY
                            keyArgument.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            keyArgument.u.mem.size = key.count
                            arguments.append(keyArgument)
                        }
                        var offset = 0
                        for header in message.headers {
                            let name = headerBuffer.baseAddress! + offset
                            offset += header.key.utf8.count + 1
                            let valueCount = header.value?.count ?? 0
                            var headerArgument = rd_kafka_vu_t()
                            headerArgument.vtype = RD_KAFKA_VTYPE_HEADER
                            headerArgument.u.header.name = name.assumingMemoryBound(to: CChar.self)
                            // A header without a value is passed as a NULL value.
                            headerArgument.u.header.val =
                                header.value == nil ? nil : UnsafeRawPointer(name + header.key.utf8.count + 1)
                            headerArgument.u.header.size = header.value == nil ? 0 : valueCount
                            arguments.append(headerArgument)
                            offset += valueCount
                        }
                        return rd_kafka_produceva(client, arguments, arguments.count)
                    }
                }
            }
        }
    }
}
