import CRdkafka

/// An error of the Kafka layer: what failed, where (topic and partition when known), librdkafka's
/// error code and name when librdkafka reported it, and whether retrying the same operation can help.
///
/// Errors of a ``KafkaTransactionalProducer`` also tell whether the transaction must be aborted
/// (``requiresAbort``) or the producer replaced (``isFatal``).
///
/// Descriptions never contain message payloads or keys.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// What kind of operation failed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case configuration, delivery, enqueue, consumption, rebalance, admin, metadata, query, closed,
                cancelled, mockCluster, fatal, transaction
        }
        private let value: Value

        /// A configuration property was rejected, or the client could not be created.
        public static let configuration = Code(value: .configuration)
        /// The broker did not acknowledge a message: it was not (or not certainly) written.
        public static let delivery = Code(value: .delivery)
        /// librdkafka refused to queue a message (unknown partition, message too large, fatal producer state).
        public static let enqueue = Code(value: .enqueue)
        /// Fetching from the broker failed in a way the consumer cannot recover from.
        public static let consumption = Code(value: .consumption)
        /// Assigning or revoking partitions failed.
        public static let rebalance = Code(value: .rebalance)
        /// An admin request (create topics) failed.
        public static let admin = Code(value: .admin)
        /// Cluster metadata could not be read.
        public static let metadata = Code(value: .metadata)
        /// A seek, pause/resume or watermark query failed.
        public static let query = Code(value: .query)
        /// The client is shutting down or has shut down; use another instance.
        public static let closed = Code(value: .closed)
        /// The waiting task was cancelled before the operation started.
        public static let cancelled = Code(value: .cancelled)
        /// A mock cluster operation failed (tests only).
        public static let mockCluster = Code(value: .mockCluster)
        /// The producer hit a fatal error (idempotence broken, producer fenced) and is being rebuilt;
        /// sending again after a moment succeeds (the message may then be written twice).
        public static let fatal = Code(value: .fatal)
        /// A call of a ``KafkaTransactionalProducer`` (initialize, begin, send offsets, commit, abort) failed:
        /// ``KafkaError/isRetriable`` tells whether making the same call again can help,
        /// ``KafkaError/requiresAbort`` that the transaction must be aborted, ``KafkaError/isFatal`` that
        /// the producer must be closed and a new one created.
        public static let transaction = Code(value: .transaction)

        public var description: String { value.rawValue }
    }

    /// What kind of operation failed.
    public var code: Code
    /// Whether the same operation may succeed when retried (transient broker or network state, timeouts).
    ///
    /// For deliveries that timed out, the message may or may not have been written: retrying can
    /// produce a duplicate, which consumers must tolerate (deduplicate on the event's identity).
    public var isRetriable: Bool
    /// A short explanation (librdkafka's error string or the layer's own); never contains payloads.
    public var reason: String
    /// librdkafka's error code (`rd_kafka_resp_err_t`), when librdkafka reported the error.
    public var rdkafkaCode: Int32?
    /// The topic concerned, when known.
    public var topic: String?
    /// The partition concerned, when known.
    public var partition: Int32?
    /// Whether the client that reported the error can no longer be used: close it and create a new one.
    ///
    /// A transactional producer is fatally failed when a newer producer with the same transactional id
    /// fenced it (``rdkafkaName`` `_FENCED`) or its idempotence guarantee broke; its open transaction is
    /// aborted by the broker. (``KafkaProducer`` replaces its client itself and reports such sends with
    /// ``Code-swift.struct/fatal`` instead.)
    public var isFatal: Bool
    /// Whether the current transaction has failed and must be aborted
    /// (``KafkaTransactionalProducer/abortTransaction(timeout:)``) before a new one begins; then the
    /// whole transaction can be done again.
    public var requiresAbort: Bool

    /// Creates an error.
    public init(
        code: Code,
        isRetriable: Bool,
        reason: String,
        rdkafkaCode: Int32? = nil,
        topic: String? = nil,
        partition: Int32? = nil,
        isFatal: Bool = false,
        requiresAbort: Bool = false
    ) {
        self.code = code
        self.isRetriable = isRetriable
        self.reason = reason
        self.rdkafkaCode = rdkafkaCode
        self.topic = topic
        self.partition = partition
        self.isFatal = isFatal
        self.requiresAbort = requiresAbort
    }

    /// librdkafka's symbolic name of ``rdkafkaCode`` (for example `_MSG_TIMED_OUT`), when known.
    public var rdkafkaName: String? {
        rdkafkaCode.map { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t($0))) }
    }

    public var description: String {
        var text = "KafkaError.\(code)"
        var location: [String] = []
        if let topic { location.append("topic \(topic)") }
        if let partition { location.append("partition \(partition)") }
        if !location.isEmpty { text += " (\(location.joined(separator: ", ")))" }
        text += ": \(reason)"
        if let rdkafkaName { text += " [\(rdkafkaName)]" }
        text += isRetriable ? " (retriable)" : " (not retriable)"
        if requiresAbort { text += " (requires abort)" }
        if isFatal { text += " (fatal)" }
        return text
    }
}

extension KafkaError {
    /// An error from a librdkafka response code, with retriability derived from the code.
    init(code: Code, rdkafka error: rd_kafka_resp_err_t, topic: String? = nil, partition: Int32? = nil) {
        self.init(
            code: code,
            isRetriable: Self.isRetriable(error),
            reason: String(cString: rd_kafka_err2str(error)),
            rdkafkaCode: error.rawValue,
            topic: topic,
            partition: partition
        )
    }

    /// An error from a librdkafka `rd_kafka_error_t`, which it destroys.
    init(code: Code, consuming error: OpaquePointer, topic: String? = nil, partition: Int32? = nil) {
        defer { rd_kafka_error_destroy(error) }
        let rdkafkaCode = rd_kafka_error_code(error)
        self.init(
            code: code,
            isRetriable: rd_kafka_error_is_retriable(error) != 0 || Self.isRetriable(rdkafkaCode),
            reason: String(cString: rd_kafka_error_string(error)),
            rdkafkaCode: rdkafkaCode.rawValue,
            topic: topic,
            partition: partition
        )
    }

    /// An error from an `rd_kafka_error_t` of the transactional API, which it destroys: retriable, fatal
    /// and abortable exactly as librdkafka flags it. Retriability is not widened from the code as
    /// ``init(code:consuming:)`` does: a `REQUEST_TIMED_OUT` answer to EndTxn, for example, fails the
    /// transaction (it must be aborted), and calling commit again would not help.
    init(code: Code, transactional error: OpaquePointer, topic: String? = nil, partition: Int32? = nil) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: code,
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            reason: String(cString: rd_kafka_error_string(error)),
            rdkafkaCode: rd_kafka_error_code(error).rawValue,
            topic: topic,
            partition: partition,
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0
        )
    }

    static func closed(_ reason: String = "the client is shut down") -> KafkaError {
        KafkaError(code: .closed, isRetriable: false, reason: reason)
    }

    /// Whether librdkafka's error code describes a transient state.
    static func isRetriable(_ error: rd_kafka_resp_err_t) -> Bool {
        switch error {
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__RESOLVE,
            RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__PURGE_QUEUE,
            RD_KAFKA_RESP_ERR__PURGE_INFLIGHT, RD_KAFKA_RESP_ERR__FATAL,
            RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH, RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH,
            RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
            return true
        default:
            return false
        }
    }
}
