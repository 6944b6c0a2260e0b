import CRdkafka
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// An idempotent Kafka producer (`acks=all`) whose sends complete with the broker's acknowledgement.
///
/// `send` returns once the broker acknowledged the message on all in-sync replicas, with its partition
/// and offset, or throws a ``KafkaError`` telling whether a retry can help. A message is never
/// reported delivered when it was not. At most
/// ``KafkaProducerConfiguration/maxInFlightMessages`` messages are unacknowledged at once: further
/// sends wait for room (backpressure) instead of queueing without bound.
///
/// The producer is a `Service`: nothing starts before ``run()``, which creates the librdkafka client
/// and serves its delivery reports on a dedicated thread. Sends made before `run()` wait for it.
/// On graceful shutdown the producer stops admitting sends, waits up to
/// ``KafkaProducerConfiguration/shutdownFlushTimeout`` for unacknowledged messages and fails the rest;
/// on cancellation it fails them at once.
///
/// ```swift
/// let reports = try await producer.send(events.map {
///     KafkaOutgoingMessage(topic: "events", key: $0.personKey, value: $0.json)
/// })
/// ```
public final class KafkaProducer: Service, Sendable {
    private let configuration: KafkaProducerConfiguration
    private let properties: [String: String]
    private let logger: Logger
    private let state: Mutex<ProducerStateMachine>
    private let parker = ThreadParker()
    private let rebuildCounter = Counter(label: "hc_kafka_producer_rebuilds_total")

    /// Creates a producer; validates the configuration but connects to nothing until ``run()``.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.properties = configuration.rdkafkaProperties
        self.logger = logger
        self.state = Mutex(ProducerStateMachine(maxInFlight: configuration.maxInFlightMessages))
        try RDKafkaClient.validate(properties: properties)
    }

    // MARK: Sending

    /// Produces one message and returns where the broker stored it.
    public func send(_ message: KafkaOutgoingMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        try await send([message])[0]
    }

    /// Produces `messages` together and returns their delivery reports in the same order, once every
    /// message is acknowledged. Throws the first failure (by position) if any message was not delivered;
    /// the others may have been delivered: use ``sendReportingEach(_:)`` to know which.
    public func send(_ messages: [KafkaOutgoingMessage]) async throws(KafkaError) -> [KafkaDeliveryReport] {
        let batch = try await produce(messages)
        var reports: [KafkaDeliveryReport] = []
        reports.reserveCapacity(messages.count)
        var failures = 0
        var firstError: KafkaError?
        for index in messages.indices {
            switch batch.outcome(at: index) {
            case .success(let report): reports.append(report)
            case .failure(let error):
                failures += 1
                if firstError == nil { firstError = error }
            }
        }
        if var firstError {
            firstError.reason += " (\(failures) of \(messages.count) messages not delivered)"
            throw firstError
        }
        return reports
    }

    /// Produces `messages` together and returns, in the same order, each one's report or error.
    public func sendReportingEach(_ messages: [KafkaOutgoingMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>]
    {
        do throws(KafkaError) {
            let batch = try await produce(messages)
            return messages.indices.map { batch.outcome(at: $0) }
        } catch {
            return Array(repeating: .failure(error), count: messages.count)
        }
    }

    /// Waits for room, queues every message in librdkafka and waits for all their reports (one suspension).
    private func produce(_ messages: [KafkaOutgoingMessage]) async throws(KafkaError) -> DeliveryBatch {
        let batch = DeliveryBatch(messages: messages)
        guard !messages.isEmpty else { return batch }
        let handle = try await admit(count: messages.count)
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            batch.continuation = continuation
            let rejected = handle.enqueue(batch)
            let (resumptions, wake) = state.withLock { $0.enqueued(rejected: rejected) }
            if wake { parker.unpark() }
            resumptions.perform()
            batch.finishEnqueueing(rejected: rejected)
        }
        return batch
    }

    private func admit(count: Int) async throws(KafkaError) -> ProducerHandle {
        switch state.withLock({ $0.admit(count: count) }) {
        case .proceed(let handle): return handle
        case .fail(let error): throw error
        case .wait: break
        }
        let id = state.withLock { $0.makeWaiterID() }
        let admission = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<ProducerStateMachine.Admission, Never>) in
                let immediate = state.withLock {
                    $0.wait(id: id, count: count, isCancelled: Task.isCancelled, continuation: continuation)
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.cancelWaiter(id: id) }?.resume(
                returning: .failure(
                    KafkaError(code: .cancelled, isRetriable: true, reason: "cancelled while waiting for room")
                )
            )
        }
        return try admission.get()
    }

    /// Stops admitting sends, flushes unacknowledged messages and ends ``run()``, as graceful shutdown does.
    public func close() {
        state.withLock { $0.beginShutdown(graceful: true) }.perform()
    }

    // MARK: Service

    /// Creates the librdkafka client and serves delivery reports on a dedicated thread until graceful
    /// shutdown (flush, then fail what remains) or cancellation (fail what remains at once).
    public func run() async throws {
        let deliveredCounter = DeliveredCounter()
        let context = RDKafkaContext(
            logger: logger,
            statistics: configuration.statisticsInterval.map { _ in KafkaStatistics(clientID: configuration.clientID) },
            onDelivery: { message in deliveredCounter.count += DeliveryBatch.deliver(message) }
        )
        let client: RDKafkaClient
        do {
            client = try RDKafkaClient.make(type: RD_KAFKA_PRODUCER, properties: properties, context: context)
        } catch {
            state.withLock { $0.abandon(error) }.perform()
            throw error
        }
        let handle = ProducerHandle(client: client)
        logger.debug("Kafka producer started", metadata: ["kafka.client": "\(configuration.clientID)"])
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withUnsafeContinuation { (finished: UnsafeContinuation<Void, Never>) in
                    state.withLock { $0.start(handle) }.perform()
                    BlockingThread.start(name: "kafka-producer-poll") {
                        self.pollLoop(handle: handle, counter: deliveredCounter, context: context)
                        finished.resume()
                    }
                }
            } onGracefulShutdown: {
                self.state.withLock { $0.beginShutdown(graceful: true) }.perform()
            }
        } onCancel: {
            self.state.withLock { $0.beginShutdown(graceful: false) }.perform()
        }
        logger.debug("Kafka producer stopped", metadata: ["kafka.client": "\(configuration.clientID)"])
    }

    /// Whether the producer accepts sends now: `false` before it started, while it replaces a client
    /// that hit a fatal error, and once it shuts down. The gateway's `/health` answers 503 meanwhile.
    public var isSending: Bool { state.withLock { $0.isSending } }

    /// Clients replaced after fatal errors since start.
    public var rebuilds: Int { state.withLock { $0.rebuilds } }

    /// Makes the running client raise a fatal error, as librdkafka's idempotent producer does when its
    /// guarantee is broken (librdkafka's own fault injection, for tests).
    func injectFatalError() {
        state.withLock { state in
            guard case .running(let handle) = state.phase else { return }
            _ = rd_kafka_test_fatal_error(
                handle.client.pointer,
                RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                "injected by a test"
            )
        }
    }

    /// The poll thread: serves delivery reports until shutdown, then flushes and destroys the client. A
    /// client that hits a fatal error is destroyed (what it held fails, retriably) and a new one created.
    private func pollLoop(handle initial: ProducerHandle, counter: DeliveredCounter, context: RDKafkaContext) {
        var handle = initial
        loop: while true {
            let client = handle.client
            rd_kafka_poll(client.pointer, 100)
            releaseDelivered(counter)
            if let error = Self.fatalError(of: client), let resumptions = state.withLock({ $0.fatal(error) }) {
                logger.error(
                    "Kafka producer hit a fatal error; its messages fail and it is rebuilt",
                    metadata: ["kafka.error": "\(error)"]
                )
                resumptions.perform()
            }
            switch state.withLock({ $0.pollThreadNext() }) {
            case .poll: continue
            case .park: parker.park()
            case .drain(let graceful):
                if graceful {
                    let remaining = Int(rd_kafka_outq_len(client.pointer))
                    if remaining > 0 {
                        logger.debug("Kafka producer flushing", metadata: ["kafka.unacknowledged": "\(remaining)"])
                    }
                    flush(client: client, counter: counter)
                }
                break loop
            case .rebuild:
                retire(handle, counter: counter)
                guard let next = rebuild(context: context) else {
                    state.withLock { $0.finish() }
                    return
                }
                handle = next
            }
        }
        retire(handle, counter: counter)
        state.withLock { $0.finish() }
    }

    /// The client's fatal error, if it has one.
    private static func fatalError(of client: RDKafkaClient) -> KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let error = rd_kafka_fatal_error(client.pointer, &text, text.count)
        guard error != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(
            code: .fatal,
            isRetriable: true,
            reason: "the producer hit a fatal error (\(String(cString: rd_kafka_err2name(error)))) and is being rebuilt"
        )
    }

    /// Fails what the client still holds (purged messages get error reports, never counted as delivered,
    /// served here so that their senders return) and destroys it.
    private func retire(_ handle: ProducerHandle, counter: DeliveredCounter) {
        let client = handle.client
        rd_kafka_purge(client.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        let deadline = ContinuousClock.now + .seconds(5)
        while rd_kafka_outq_len(client.pointer) > 0, ContinuousClock.now < deadline {
            rd_kafka_poll(client.pointer, 50)
        }
        releaseDelivered(counter)
        let stuck = rd_kafka_outq_len(client.pointer)
        if stuck > 0 {
            logger.warning("Kafka producer destroyed with unreported events", metadata: ["kafka.events": "\(stuck)"])
        }
        handle.destroy()
    }

    /// Creates the client that replaces one with a fatal error, after ``KafkaProducerConfiguration/fatalErrorRebuildDelay``
    /// (doubling while creating fails); `nil` if shutdown began meanwhile.
    private func rebuild(context: RDKafkaContext) -> ProducerHandle? {
        var delay = configuration.fatalErrorRebuildDelay
        while true {
            let deadline = ContinuousClock.now + delay
            while ContinuousClock.now < deadline {
                guard state.withLock({ $0.isRebuilding }) else { return nil }
                _ = parker.park(timeout: .milliseconds(50))
            }
            do {
                let client = try RDKafkaClient.make(type: RD_KAFKA_PRODUCER, properties: properties, context: context)
                let handle = ProducerHandle(client: client)
                let (resumptions, use) = state.withLock { $0.rebuilt(handle) }
                guard use else {
                    handle.destroy()
                    return nil
                }
                resumptions.perform()
                rebuildCounter.increment()
                logger.notice("Kafka producer rebuilt after a fatal error; sending again")
                return handle
            } catch {
                logger.error("Kafka producer could not be rebuilt; trying again", metadata: ["kafka.error": "\(error)"])
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    /// Flushes in slices so that a cancellation during a graceful flush cuts it short.
    private func flush(client: RDKafkaClient, counter: DeliveredCounter) {
        let deadline = ContinuousClock.now + configuration.shutdownFlushTimeout
        while rd_kafka_outq_len(client.pointer) > 0, ContinuousClock.now < deadline {
            rd_kafka_flush(client.pointer, 100)
            releaseDelivered(counter)
            if state.withLock({ $0.isCancelled }) { return }
        }
    }

    private func releaseDelivered(_ counter: DeliveredCounter) {
        guard counter.count > 0 else { return }
        let count = counter.count
        counter.count = 0
        state.withLock { $0.delivered(count: count) }.perform()
    }
}

/// Messages reported since the poll thread last released their room. Poll thread only.
private final class DeliveredCounter: @unchecked Sendable {
    var count = 0
}

/// The running client and its topic handles. Senders use it only while admitted.
final class ProducerHandle: Sendable {
    let client: RDKafkaClient
    private let topics = Mutex<[String: OpaquePointer]>([:])

    init(client: RDKafkaClient) {
        self.client = client
    }

    /// Queues the batch's messages; returns how many librdkafka refused (their outcome is already set).
    func enqueue(_ batch: DeliveryBatch) -> Int {
        var rejected = 0
        var lastTopic: (name: String, handle: OpaquePointer)?
        for index in batch.messages.indices {
            let message = batch.messages[index]
            let topicHandle: OpaquePointer
            if let lastTopic, lastTopic.name == message.topic {
                topicHandle = lastTopic.handle
            } else {
                topicHandle = self.topicHandle(message.topic)
                lastTopic = (message.topic, topicHandle)
            }
            let error = Self.produce(
                client: client.pointer,
                topic: topicHandle,
                message: message,
                opaque: batch.slot(index)
            )
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                batch.reject(index: index, error: error)
                rejected += 1
            }
        }
        return rejected
    }

    private static func produce(
        client: OpaquePointer,
        topic: OpaquePointer,
        message: KafkaOutgoingMessage,
        opaque: UnsafeMutableRawPointer
    ) -> rd_kafka_resp_err_t {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            let list = rd_kafka_headers_new(message.headers.count)!
            for header in message.headers {
                if let value = header.value {
                    value.withUnsafeBytes { _ = rd_kafka_header_add(list, header.key, -1, $0.baseAddress, $0.count) }
                } else {
                    rd_kafka_header_add(list, header.key, -1, nil, 0)
                }
            }
            headers = list
        }
        let partition = message.partition ?? RD_KAFKA_PARTITION_UA
        let error = message.value.withUnsafeBytes { value in
            if let key = message.key {
                return key.withUnsafeBytes { key in
                    healthcode_rd_kafka_produce(
                        client,
                        topic,
                        partition,
                        key.baseAddress,
                        key.count,
                        value.baseAddress,
                        value.count,
                        headers,
                        opaque
                    )
                }
            }
            return healthcode_rd_kafka_produce(
                client,
                topic,
                partition,
                nil,
                0,
                value.baseAddress,
                value.count,
                headers,
                opaque
            )
        }
        if error != RD_KAFKA_RESP_ERR_NO_ERROR, let headers {
            rd_kafka_headers_destroy(headers)
        }
        return error
    }

    private func topicHandle(_ name: String) -> OpaquePointer {
        topics.withLock { topics in
            if let handle = topics[name] { return handle }
            let handle = rd_kafka_topic_new(client.pointer, name, nil)!
            topics[name] = handle
            return handle
        }
    }

    /// Destroys the topic handles and the client. Poll thread, after every sender finished.
    func destroy() {
        topics.withLock { topics in
            for handle in topics.values { rd_kafka_topic_destroy(handle) }
            topics.removeAll()
        }
        client.destroy()
    }
}

/// One `send`'s messages and their outcomes. librdkafka gets a pointer to a message's slot as the
/// message's opaque; the last report (or the sender, for refused messages) resumes the sender.
final class DeliveryBatch: @unchecked Sendable {
    /// A message's outcome, written once by the poll thread (report) or the sender (refusal).
    struct Slot {
        var batch: Unmanaged<DeliveryBatch>
        var partition: Int32 = -1
        var offset: Int64 = -1
        var error: rd_kafka_resp_err_t = RD_KAFKA_RESP_ERR__FAIL
        var persisted = false
        var rejected = false
    }

    let messages: [KafkaOutgoingMessage]
    private let slots: UnsafeMutablePointer<Slot>
    /// Reports still expected, plus one held by the sender until it finished enqueueing.
    private let remaining: Atomic<Int>
    /// Set by the sender before the first message is queued; read by whoever completes the batch.
    var continuation: UnsafeContinuation<Void, Never>?

    init(messages: [KafkaOutgoingMessage]) {
        self.messages = messages
        self.remaining = Atomic(messages.count + 1)
        self.slots = .allocate(capacity: messages.count)
        let unmanaged = Unmanaged.passUnretained(self)
        slots.initialize(repeating: Slot(batch: unmanaged), count: messages.count)
    }

    deinit {
        slots.deinitialize(count: messages.count)
        slots.deallocate()
    }

    func slot(_ index: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(slots + index)
    }

    /// Records librdkafka's refusal to queue message `index` (no report will come for it).
    func reject(index: Int, error: rd_kafka_resp_err_t) {
        slots[index].error = error
        slots[index].rejected = true
    }

    /// The sender finished queueing: drops its hold, completing the batch if every report arrived.
    func finishEnqueueing(rejected: Int) {
        complete(count: rejected + 1)
    }

    private func complete(count: Int) {
        if remaining.subtract(count, ordering: .acquiringAndReleasing).newValue == 0 {
            continuation!.resume()
        }
    }

    /// Records a delivery report (poll thread); returns the number of messages it reports (1).
    static func deliver(_ message: UnsafePointer<rd_kafka_message_t>) -> Int {
        guard let opaque = message.pointee._private else { return 0 }
        let slot = opaque.assumingMemoryBound(to: Slot.self)
        slot.pointee.error = message.pointee.err
        slot.pointee.partition = message.pointee.partition
        slot.pointee.offset = message.pointee.offset
        slot.pointee.persisted = rd_kafka_message_status(message) == RD_KAFKA_MSG_STATUS_PERSISTED
        slot.pointee.batch.takeUnretainedValue().complete(count: 1)
        return 1
    }

    /// Message `index`'s outcome; valid once the batch completed.
    func outcome(at index: Int) -> Result<KafkaDeliveryReport, KafkaError> {
        let slot = slots[index]
        let topic = messages[index].topic
        if slot.error == RD_KAFKA_RESP_ERR_NO_ERROR, slot.persisted, slot.offset >= 0 {
            return .success(KafkaDeliveryReport(topic: topic, partition: slot.partition, offset: slot.offset))
        }
        let partition = slot.partition >= 0 ? slot.partition : messages[index].partition
        if slot.error == RD_KAFKA_RESP_ERR_NO_ERROR {
            // Acknowledged without a persisted status or offset: never claim a delivery we cannot prove.
            return .failure(
                KafkaError(
                    code: .delivery,
                    isRetriable: true,
                    reason: "the broker's acknowledgement did not confirm persistence",
                    topic: topic,
                    partition: partition
                )
            )
        }
        return .failure(
            KafkaError(
                code: slot.rejected ? .enqueue : .delivery,
                rdkafka: slot.error,
                topic: topic,
                partition: partition
            )
        )
    }
}
