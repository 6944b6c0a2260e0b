import Foundation
import HealthCodeKafka
import HealthCodeTestSupport
import Logging
import ServiceLifecycle

/// Consumer settings that make Tansu's group joins take ~3 s instead of ~23 s.
func fastGroupConfiguration(bootstrapServers: [String], groupID: String) -> KafkaConsumerConfiguration {
    var configuration = KafkaConsumerConfiguration(bootstrapServers: bootstrapServers, groupID: groupID)
    configuration.sessionTimeout = .seconds(6)
    configuration.heartbeatInterval = .milliseconds(500)
    return configuration
}

/// The local broker's bootstrap servers.
var brokerServers: [String] { [LocalInfrastructure.kafkaBootstrapServers] }

/// Creates a topic with a unique name on the local broker.
func makeTopic(_ prefix: String, partitions: Int) async throws -> String {
    let name = LocalInfrastructure.uniqueName(prefix)
    let admin = try KafkaAdmin(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
    try await admin.createTopics([KafkaTopicSpecification(name: name, partitions: partitions)])
    return name
}

/// `count` messages with keys `key-i` and values `value-i` (i from `start`).
func makeMessages(topic: String, count: Int, start: Int = 0, partition: Int32? = nil) -> [KafkaOutgoingMessage] {
    (start..<start + count).map {
        KafkaOutgoingMessage(
            topic: topic,
            key: Array("key-\($0)".utf8),
            value: Array("value-\($0)".utf8),
            partition: partition
        )
    }
}

/// Collects batches until `count` messages arrived or `timeout` passed.
func collect(
    _ consumer: KafkaConsumer,
    count: Int,
    timeout: Duration = .seconds(30)
) async throws -> [KafkaMessage] {
    try await withThrowingTaskGroup(of: [KafkaMessage]?.self) { group in
        group.addTask {
            var messages: [KafkaMessage] = []
            for try await batch in consumer.batches {
                messages.append(contentsOf: batch)
                if messages.count >= count { break }
            }
            return messages
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next()!
        group.cancelAll()
        guard let messages = first else { throw TestTimeout() }
        return messages
    }
}

struct TestTimeout: Error {}

extension KafkaMessage {
    var valueString: String { String(decoding: value, as: UTF8.self) }
    var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
}

/// A service group started and shut down explicitly (for tests that shut down mid-operation).
actor ServiceGroupHandle {
    private var group: ServiceGroup?
    private var pendingShutdown = false

    func run(_ services: [any Service]) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [],
                logger: testLogger()
            )
        )
        self.group = group
        if pendingShutdown { await group.triggerGracefulShutdown() }
        try await group.run()
    }

    func shutdown() async {
        guard let group else {
            pendingShutdown = true
            return
        }
        await group.triggerGracefulShutdown()
    }
}
