import CRdkafka
import Foundation
import Logging

/// A topic to create.
public struct KafkaTopicSpecification: Sendable, Hashable {
    /// The topic's name.
    public var name: String
    /// Number of partitions.
    public var partitions: Int
    /// Replicas per partition (1 on a single broker).
    public var replicationFactor: Int
    /// Topic configuration (for example `retention.ms`).
    public var configuration: [String: String]

    /// Creates a topic specification.
    public init(name: String, partitions: Int, replicationFactor: Int = 1, configuration: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configuration = configuration
    }
}

/// A topic as the cluster's metadata describes it.
public struct KafkaTopicDescription: Sendable, Hashable {
    /// The topic's name.
    public var name: String
    /// Its partitions, by id.
    public var partitions: [KafkaPartitionDescription]
}

/// A partition as the cluster's metadata describes it.
public struct KafkaPartitionDescription: Sendable, Hashable {
    /// The partition's id.
    public var id: Int32
    /// The leader broker's id (-1 when there is none).
    public var leader: Int32
    /// The ids of the brokers holding replicas.
    public var replicas: [Int32]
    /// The ids of the in-sync replicas.
    public var inSyncReplicas: [Int32]
}

/// Cluster administration: create topics, list and describe them.
///
/// Each operation uses a short-lived librdkafka client on its own thread (admin calls are rare and
/// blocking); the admin holds no connection between calls and needs no lifecycle.
public struct KafkaAdmin: Sendable {
    private let configuration: KafkaAdminConfiguration
    private let properties: [String: String]
    private let logger: Logger

    /// Creates an admin; validates the configuration but connects to nothing.
    public init(configuration: KafkaAdminConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.properties = configuration.rdkafkaProperties
        self.logger = logger
        try RDKafkaClient.validate(properties: properties)
    }

    /// Creates `topics`; a topic that already exists is fine (its partition count is not changed).
    /// Returns once the cluster's metadata shows every topic with a leader for each partition.
    public func createTopics(_ topics: [KafkaTopicSpecification]) async throws(KafkaError) {
        guard !topics.isEmpty else { return }
        let timeout = Int32(configuration.requestTimeout.milliseconds)
        try await withClient { client throws(KafkaError) in
            try Self.create(topics, client: client, timeoutMilliseconds: timeout)
            try Self.waitForLeaders(topics.map(\.name), client: client, timeoutMilliseconds: timeout)
        }
    }

    /// The names of the cluster's topics (internal topics excluded), sorted.
    public func listTopics() async throws(KafkaError) -> [String] {
        let timeout = Int32(configuration.requestTimeout.milliseconds)
        return try await withClient { client throws(KafkaError) in
            try Self.metadata(client: client, timeoutMilliseconds: timeout).map(\.name)
                .filter { !$0.hasPrefix("__") }.sorted()
        }
    }

    /// Describes `names`; throws ``KafkaError/Code-swift.struct/metadata`` if one does not exist.
    public func describeTopics(_ names: [String]) async throws(KafkaError) -> [KafkaTopicDescription] {
        let timeout = Int32(configuration.requestTimeout.milliseconds)
        return try await withClient { client throws(KafkaError) in
            let all = try Self.metadata(client: client, timeoutMilliseconds: timeout)
            return try names.map { name throws(KafkaError) in
                guard let topic = all.first(where: { $0.name == name }), !topic.partitions.isEmpty else {
                    throw KafkaError(
                        code: .metadata,
                        isRetriable: false,
                        reason: "no such topic",
                        rdkafkaCode: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue,
                        topic: name
                    )
                }
                return topic
            }
        }
    }

    private func withClient<Result: Sendable>(
        _ body: @escaping @Sendable (RDKafkaClient) throws(KafkaError) -> Result
    ) async throws(KafkaError) -> Result {
        let properties = properties
        let context = RDKafkaContext(logger: logger, statistics: nil)
        return try await BlockingThread.run(name: "kafka-admin") { () throws(KafkaError) -> Result in
            let client = try RDKafkaClient.make(type: RD_KAFKA_PRODUCER, properties: properties, context: context)
            defer { client.destroy() }
            return try body(client)
        }
    }

    private static func create(
        _ topics: [KafkaTopicSpecification],
        client: RDKafkaClient,
        timeoutMilliseconds: Int32
    ) throws(KafkaError) {
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for topic in topics {
            guard
                let newTopic = rd_kafka_NewTopic_new(
                    topic.name,
                    Int32(topic.partitions),
                    Int32(topic.replicationFactor),
                    &errorText,
                    errorText.count
                )
            else {
                throw KafkaError(code: .admin, isRetriable: false, reason: Self.text(errorText), topic: topic.name)
            }
            newTopics.append(newTopic)
            for (name, value) in topic.configuration.sorted(by: { $0.key < $1.key }) {
                rd_kafka_NewTopic_set_config(newTopic, name, value)
            }
        }
        let options = rd_kafka_AdminOptions_new(client.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_request_timeout(options, timeoutMilliseconds, &errorText, errorText.count)
        rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMilliseconds, &errorText, errorText.count)
        let queue = rd_kafka_queue_new(client.pointer)
        defer { rd_kafka_queue_destroy(queue) }
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(client.pointer, buffer.baseAddress, buffer.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds + 5000) else {
            throw KafkaError(code: .admin, rdkafka: RD_KAFKA_RESP_ERR__TIMED_OUT)
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        guard eventError == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                code: .admin,
                isRetriable: KafkaError.isRetriable(eventError),
                reason: String(cString: rd_kafka_event_error_string(event)),
                rdkafkaCode: eventError.rawValue
            )
        }
        var count = 0
        let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
        for index in 0..<count {
            guard let result = results?[index] else { continue }
            let error = rd_kafka_topic_result_error(result)
            guard error != RD_KAFKA_RESP_ERR_NO_ERROR, error != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else { continue }
            throw KafkaError(
                code: .admin,
                isRetriable: KafkaError.isRetriable(error),
                reason: rd_kafka_topic_result_error_string(result).map { String(cString: $0) }
                    ?? String(cString: rd_kafka_err2str(error)),
                rdkafkaCode: error.rawValue,
                topic: String(cString: rd_kafka_topic_result_name(result))
            )
        }
    }

    /// Waits until the metadata shows `names` with a leader for every partition.
    private static func waitForLeaders(
        _ names: [String],
        client: RDKafkaClient,
        timeoutMilliseconds: Int32
    ) throws(KafkaError) {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutMilliseconds))
        while true {
            let topics = try metadata(client: client, timeoutMilliseconds: timeoutMilliseconds)
            let ready = names.allSatisfy { name in
                topics.contains {
                    $0.name == name && !$0.partitions.isEmpty && $0.partitions.allSatisfy { $0.leader >= 0 }
                }
            }
            if ready { return }
            guard ContinuousClock.now < deadline else {
                throw KafkaError(code: .admin, isRetriable: true, reason: "created topics have no leader yet")
            }
            Thread.sleep(forTimeInterval: 0.05)  // admin thread: the controller is electing leaders
        }
    }

    private static func metadata(
        client: RDKafkaClient,
        timeoutMilliseconds: Int32
    ) throws(KafkaError) -> [KafkaTopicDescription] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(client.pointer, 1, nil, &metadata, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(code: .metadata, rdkafka: error)
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        return (0..<Int(metadata.pointee.topic_cnt)).compactMap { index in
            let topic = metadata.pointee.topics[index]
            guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            let partitions = (0..<Int(topic.partition_cnt)).map { partitionIndex in
                let partition = topic.partitions[partitionIndex]
                return KafkaPartitionDescription(
                    id: partition.id,
                    leader: partition.leader,
                    replicas: Array(UnsafeBufferPointer(start: partition.replicas, count: Int(partition.replica_cnt))),
                    inSyncReplicas: Array(UnsafeBufferPointer(start: partition.isrs, count: Int(partition.isr_cnt)))
                )
            }
            return KafkaTopicDescription(
                name: String(cString: topic.topic),
                partitions: partitions.sorted { $0.id < $1.id }
            )
        }
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
