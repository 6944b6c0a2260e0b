import Foundation
import HealthCodeKafka
import HealthCodeTestSupport
import Testing

/// End-to-end tests against the local Kafka-protocol broker (Tansu, `scripts/infra.sh start`).
@Suite(.enabled(if: LocalInfrastructure.kafkaTestsEnabled), .timeLimit(.minutes(1)))
struct KafkaBrokerTests {
    @Test func roundTripWithKeysHeadersAndReports() async throws {
        let topic = try await makeTopic("roundtrip", partitions: 3)
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        var consumerConfiguration = KafkaConsumerConfiguration(bootstrapServers: brokerServers)
        consumerConfiguration.maxPollMessages = 100
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: testLogger())
        try await withServices([producer, consumer]) {
            var messages = makeMessages(topic: topic, count: 1000)
            messages[7].headers = [
                KafkaHeader(key: "trace", value: Array("abc".utf8)), KafkaHeader(key: "empty", value: nil),
            ]
            let reports = try await producer.send(messages)
            #expect(reports.count == 1000)
            #expect(Set(reports.map(\.partition)).count == 3)
            let single = try await producer.send(
                KafkaOutgoingMessage(topic: topic, value: Array("single".utf8), partition: 1)
            )
            #expect(single.partition == 1)

            try consumer.assign(
                Dictionary(
                    uniqueKeysWithValues: (0..<3).map {
                        (KafkaTopicPartition(topic: topic, partition: $0), KafkaOffset.beginning)
                    }
                )
            )
            let received = try await collect(consumer, count: 1001)
            #expect(received.count == 1001)
            var expected: [KafkaTopicPartition: [Int64: String]] = [:]
            for (message, report) in zip(messages, reports) {
                expected[KafkaTopicPartition(topic: topic, partition: report.partition), default: [:]][report.offset] =
                    String(decoding: message.value, as: UTF8.self)
            }
            for message in received where message.valueString != "single" {
                let partition = KafkaTopicPartition(topic: topic, partition: message.partition)
                #expect(expected[partition]?[message.offset] == message.valueString)
                #expect(message.keyString == "key-" + message.valueString.dropFirst("value-".count))
                #expect(message.timestamp != nil)
            }
            let withHeaders = try #require(received.first { $0.valueString == "value-7" })
            #expect(withHeaders.headers == messages[7].headers)
            // Same key, same partition, in order.
            let byPartition = Dictionary(grouping: received, by: \.partition)
            for (_, messages) in byPartition {
                #expect(messages.map(\.offset) == messages.map(\.offset).sorted())
            }
            let ends = try await consumer.watermarks(
                for: (0..<3).map { KafkaTopicPartition(topic: topic, partition: $0) }
            )
            // Tansu 0.6's ListOffsets lags; the consumer's fetched high watermark corrects it.
            #expect(ends.values.map(\.high).reduce(0, +) == 1001)
            #expect(consumer.lag().values.allSatisfy { $0 == 0 })
        }
    }

    @Test(arguments: [KafkaCompression.lz4, .zstd, .gzip])
    func compressedRoundTrip(compression: KafkaCompression) async throws {
        let topic = try await makeTopic("compressed", partitions: 1)
        var configuration = KafkaProducerConfiguration(bootstrapServers: brokerServers)
        configuration.compression = compression
        let producer = try KafkaProducer(configuration: configuration, logger: testLogger())
        let consumer = try KafkaConsumer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        try await withServices([producer, consumer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 200))
            try consumer.assign([KafkaTopicPartition(topic: topic, partition: 0): .beginning])
            let received = try await collect(consumer, count: 200)
            #expect(received.map(\.valueString) == (0..<200).map { "value-\($0)" })
        }
    }

    @Test func adminCreatesTopicsIdempotentlyAndDescribesThem() async throws {
        let admin = try KafkaAdmin(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        let name = LocalInfrastructure.uniqueName("admin")
        try await admin.createTopics([KafkaTopicSpecification(name: name, partitions: 8)])
        try await admin.createTopics([KafkaTopicSpecification(name: name, partitions: 8)])
        #expect(try await admin.listTopics().contains(name))
        let description = try #require(try await admin.describeTopics([name]).first)
        #expect(description.partitions.map(\.id) == Array(0..<8))
        #expect(description.partitions.allSatisfy { $0.leader >= 0 })
        let missing = try await #require(throws: KafkaError.self) {
            try await admin.describeTopics([LocalInfrastructure.uniqueName("missing")])
        }
        #expect(missing.code == .metadata)
    }

    /// An assignment hook that throws ends the batches with its error; the consumer leaves the group.
    @Test func failingAssignmentHookClosesTheConsumer() async throws {
        struct OffsetsUnavailable: Error {}
        let topic = try await makeTopic("hookfail", partitions: 1)
        let consumer = try KafkaConsumer(
            configuration: fastGroupConfiguration(
                bootstrapServers: brokerServers,
                groupID: LocalInfrastructure.uniqueName("group")
            ),
            logger: testLogger()
        )
        try consumer.subscribe(topics: [topic]) { _ in throw OffsetsUnavailable() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await #expect(throws: OffsetsUnavailable.self) { try await consumer.run() }
            }
            await #expect(throws: OffsetsUnavailable.self) {
                for try await _ in consumer.batches {}
            }
            try await group.waitForAll()
        }
        #expect(consumer.assignment().isEmpty)
    }
}
