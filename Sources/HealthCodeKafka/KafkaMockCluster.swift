import CRdkafka
import Logging

/// librdkafka's in-process mock Kafka cluster, for fault-injection tests of code using this layer:
/// brokers going down, injected request errors, leader changes. Not for production use.
///
/// Point a producer or consumer at ``bootstrapServers``. The cluster lives until the object is released.
public final class KafkaMockCluster: @unchecked Sendable {
    /// A Kafka protocol request type whose responses can be made to fail.
    public struct RequestType: Hashable, Sendable {
        /// The Kafka protocol API key.
        public var apiKey: Int16
        /// Creates a request type from its API key.
        public init(apiKey: Int16) { self.apiKey = apiKey }

        /// Produce.
        public static let produce = RequestType(apiKey: 0)
        /// Fetch.
        public static let fetch = RequestType(apiKey: 1)
        /// ListOffsets.
        public static let listOffsets = RequestType(apiKey: 2)
        /// Metadata.
        public static let metadata = RequestType(apiKey: 3)
        /// JoinGroup.
        public static let joinGroup = RequestType(apiKey: 11)
        /// Heartbeat.
        public static let heartbeat = RequestType(apiKey: 12)
        /// SyncGroup.
        public static let syncGroup = RequestType(apiKey: 14)
        /// InitProducerId.
        public static let initProducerID = RequestType(apiKey: 22)
        /// AddPartitionsToTxn: a transactional producer registers a partition it writes to.
        public static let addPartitionsToTxn = RequestType(apiKey: 24)
        /// AddOffsetsToTxn: a transactional producer registers the consumer group whose offsets it commits.
        public static let addOffsetsToTxn = RequestType(apiKey: 25)
        /// EndTxn: commits or aborts a transaction.
        public static let endTxn = RequestType(apiKey: 26)
        /// TxnOffsetCommit: a transactional producer commits a group's offsets inside its transaction.
        public static let txnOffsetCommit = RequestType(apiKey: 28)
    }

    /// A broker error code to inject.
    public struct ErrorCode: Hashable, Sendable {
        /// The Kafka protocol error code.
        public var rawValue: Int32
        /// Creates an error code from its protocol value.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// UNKNOWN_TOPIC_OR_PARTITION (retriable).
        public static let unknownTopicOrPartition = ErrorCode(rawValue: 3)
        /// LEADER_NOT_AVAILABLE (retriable).
        public static let leaderNotAvailable = ErrorCode(rawValue: 5)
        /// NOT_LEADER_OR_FOLLOWER (retriable).
        public static let notLeaderForPartition = ErrorCode(rawValue: 6)
        /// REQUEST_TIMED_OUT (retriable).
        public static let requestTimedOut = ErrorCode(rawValue: 7)
        /// NETWORK_EXCEPTION (retriable).
        public static let networkException = ErrorCode(rawValue: 13)
        /// NOT_ENOUGH_REPLICAS (retriable).
        public static let notEnoughReplicas = ErrorCode(rawValue: 19)
        /// MESSAGE_TOO_LARGE (not retriable).
        public static let messageTooLarge = ErrorCode(rawValue: 10)
        /// TOPIC_AUTHORIZATION_FAILED (not retriable).
        public static let topicAuthorizationFailed = ErrorCode(rawValue: 29)
        /// GROUP_AUTHORIZATION_FAILED (not retriable).
        public static let groupAuthorizationFailed = ErrorCode(rawValue: 30)
        /// CONCURRENT_TRANSACTIONS (retriable): the coordinator is still completing a transaction.
        public static let concurrentTransactions = ErrorCode(rawValue: 51)
        /// PRODUCER_FENCED: a newer producer with the same transactional id took over (fatal for the
        /// fenced producer).
        public static let producerFenced = ErrorCode(rawValue: 90)
    }

    private let client: RDKafkaClient
    private let cluster: OpaquePointer

    /// The brokers' addresses, for ``KafkaProducerConfiguration/bootstrapServers`` and the like.
    public let bootstrapServers: [String]

    /// Starts a mock cluster of `brokers` brokers (ids 1...brokers).
    public init(brokers: Int = 3, logger: Logger) throws(KafkaError) {
        client = try RDKafkaClient.make(
            type: RD_KAFKA_PRODUCER,
            properties: ["client.id": "healthcode-mock-cluster"],
            context: RDKafkaContext(logger: logger, statistics: nil)
        )
        guard let cluster = rd_kafka_mock_cluster_new(client.pointer, Int32(brokers)) else {
            client.destroy()
            throw KafkaError(code: .mockCluster, isRetriable: false, reason: "the mock cluster could not be created")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster)).split(separator: ",").map(
            String.init
        )
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        client.destroy()
    }

    /// Creates a topic.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        try check(rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)), topic: name)
    }

    /// Takes a broker down (its connections close and it refuses new ones) or brings it back.
    public func setBroker(_ id: Int32, up: Bool) throws(KafkaError) {
        try check(up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id))
    }

    /// Adds latency to every response of a broker.
    public func setBrokerRoundTrip(_ id: Int32, latency: Duration) throws(KafkaError) {
        try check(rd_kafka_mock_broker_set_rtt(cluster, id, Int32(latency.milliseconds)))
    }

    /// Makes the next `errors.count` requests of `type` (on any broker) fail with these errors, in order.
    public func failNextRequests(_ type: RequestType, with errors: [ErrorCode]) {
        let codes = errors.map { rd_kafka_resp_err_t($0.rawValue) }
        codes.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, type.apiKey, buffer.count, buffer.baseAddress)
        }
    }

    /// Moves a partition's leadership to another broker; clients get NOT_LEADER errors and follow it.
    public func setLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker), topic: topic)
    }

    /// Stores `offsets` as `group`'s committed offsets with a plain commit, as an earlier member of the group
    /// would have (the mock cluster keeps these; it does not keep offsets committed in transactions).
    public func commitOffsets(_ offsets: [KafkaTopicPartition: Int64], group: String) async throws(KafkaError) {
        let properties = ["bootstrap.servers": bootstrapServers.joined(separator: ","), "group.id": group]
        let logger = client.context.logger
        try await BlockingThread.run(name: "mock-commit") { () throws(KafkaError) in
            let client = try RDKafkaClient.make(
                type: RD_KAFKA_CONSUMER,
                properties: properties,
                context: RDKafkaContext(logger: logger, statistics: nil)
            )
            defer { client.destroy(flags: RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE) }
            let list = RDKafkaPartitionList(offsets.map { ($0.key, $0.value) })
            let error = rd_kafka_commit(client.pointer, list.pointer, 0)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .query, rdkafka: error) }
        }
    }

    private func check(_ error: rd_kafka_resp_err_t, topic: String? = nil) throws(KafkaError) {
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code: .mockCluster, rdkafka: error, topic: topic)
        }
    }
}
