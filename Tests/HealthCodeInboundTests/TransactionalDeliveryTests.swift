import Foundation
import HealthCodeCore
import HealthCodeGateway
import HealthCodeInbound
import HealthCodeKafka
import HealthCodeTestSupport
import Logging
import ServiceLifecycle
import Testing

/// The ingest processor's transactional delivery (Apache Kafka) on librdkafka's mock cluster. The mock writes
/// transaction markers but neither hides aborted transactions nor stores transactional offsets (see
/// `KafkaTransactionTests`), so this checks what it can show: every batch goes through a transaction (markers
/// after the outputs), each message yields exactly one output, refusals go to the rejects topic, and the
/// processor starts at its group's committed offsets.
@Suite(.timeLimit(.minutes(2)))
struct TransactionalDeliveryTests {
    let cluster: KafkaMockCluster
    let inbound = InboundTopic.prefix + "mock-bureau"
    let events = "mock.events"
    static let publisher = "urn:hc:publisher:mock-bureau"

    init() throws {
        cluster = try KafkaMockCluster(brokers: 1, logger: testLogger())
        try cluster.createTopic(inbound, partitions: 2, replicationFactor: 1)
        try cluster.createTopic(InboundTopic.rejects(ofInbound: inbound), partitions: 2, replicationFactor: 1)
        try cluster.createTopic(events, partitions: 2, replicationFactor: 1)
    }

    func processor() throws -> [any Service] {
        var configuration = IngestProcessorConfiguration()
        configuration.bootstrapServers = cluster.bootstrapServers
        configuration.eventsTopic = events
        configuration.inboundPartitions = 2
        configuration.batchMessages = 100
        configuration.deliveryTimeout = .seconds(10)
        configuration.delivery = .transactional(transactionalID: "ingest-test", group: "ingest-test")
        var gateway = GatewayConfiguration()
        gateway.bootstrapServers = cluster.bootstrapServers
        gateway.topic = events
        let record = PublisherRecord(
            id: Self.publisher,
            credential: .apiKeyHash(sha256Hex: "00"),
            eventTypes: [EventType.testResult.rawValue],
            inboundTopic: inbound
        )
        return try Inbound.build(
            configuration: configuration,
            gateway: gateway,
            pseudonymizer: try Pseudonymizer(hexKey: String(repeating: "ab", count: 32)),
            stores: .inMemory(publishers: { [record] }),
            checkpoints: UnusedCheckpoints(),
            logger: testLogger()
        )
    }

    static func testResult(_ index: Int, source: String = publisher) -> String {
        #"{"specversion":"1.0","id":"m-\#(index)","source":"\#(source)","type":"hc.test-result.v1","subject":"4401061990\#(String(format: "%08d", index))","time":"2026-01-01T08:00:00Z","data":{"test":"pcr","result":"positive","lab":"GZ-CDC"}}"#
    }

    func produce(_ values: [String]) async throws {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
            logger: testLogger()
        )
        try await withServices([producer]) {
            _ = try await producer.send(
                values.enumerated().map {
                    KafkaOutgoingMessage(
                        topic: inbound,
                        key: Array("lab-\($0.offset % 2)".utf8),
                        value: Array($0.element.utf8)
                    )
                }
            )
        }
    }

    /// The messages and the end offsets (data plus markers) of every partition of `topic`, once `count` arrived.
    func read(_ topic: String, count: Int) async throws -> (messages: [KafkaMessage], ends: Int64) {
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers),
            logger: testLogger()
        )
        let partitions = (0..<Int32(2)).map { KafkaTopicPartition(topic: topic, partition: $0) }
        return try await withServices([consumer]) {
            try consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) }))
            var messages: [KafkaMessage] = []
            let deadline = ContinuousClock.now + .seconds(30)
            if count > 0 {
                for try await batch in consumer.batches {
                    messages.append(contentsOf: batch)
                    if messages.count >= count || ContinuousClock.now > deadline { break }
                }
            }
            let ends = try await consumer.watermarks(for: partitions).values.reduce(0) { $0 + $1.high }
            return (messages, ends)
        }
    }

    @Test("each inbound message becomes one output inside a transaction; refusals go to the rejects topic")
    func outputsCommitInTransactions() async throws {
        let valid = (0..<300).map { Self.testResult($0) }
        let foreign = (300..<320).map { Self.testResult($0, source: "urn:hc:publisher:someone-else") }
        try await produce(valid + foreign)
        let (accepted, rejected) = try await withServices(try processor()) {
            let accepted = try await read(events, count: valid.count)
            let rejected = try await read(InboundTopic.rejects(ofInbound: inbound), count: foreign.count)
            return (accepted, rejected)
        }
        #expect(accepted.messages.count == valid.count)
        #expect(Set(accepted.messages.map { String(decoding: $0.value, as: UTF8.self) }).count == valid.count)
        #expect(
            accepted.ends > Int64(valid.count),
            "commit markers follow the outputs: they were written in transactions"
        )
        #expect(rejected.messages.count == foreign.count)
        #expect(
            rejected.messages.allSatisfy { String(decoding: $0.value, as: UTF8.self).contains("forbidden-source") }
        )
        for message in accepted.messages {
            #expect(!String(decoding: message.value, as: UTF8.self).contains("\"subject\":\"4401061990"))
        }
    }

    @Test("a processor starts each inbound partition at its group's committed offset")
    func resumesAtCommittedOffsets() async throws {
        let values = (0..<10).map { Self.testResult($0) }
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
            logger: testLogger()
        )
        try await withServices([producer]) {
            _ = try await producer.send(
                values.enumerated().map {
                    KafkaOutgoingMessage(topic: inbound, value: Array($0.element.utf8), partition: Int32($0.offset % 2))
                }
            )
        }
        // What an earlier processor committed: partition 0 up to offset 3, partition 1 up to offset 2.
        try await cluster.commitOffsets(
            [
                KafkaTopicPartition(topic: inbound, partition: 0): 3,
                KafkaTopicPartition(topic: inbound, partition: 1): 2,
            ],
            group: "ingest-test"
        )
        let accepted = try await withServices(try processor()) { try await read(events, count: 5) }
        let ids = Set(
            accepted.messages.compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any])?["id"] as? String
            }
        )
        // Partition 0 holds m-0, m-2, m-4, m-6, m-8 (offsets 0…4); partition 1 m-1, m-3, … .
        #expect(ids == ["m-6", "m-8", "m-5", "m-7", "m-9"])
        #expect(accepted.messages.count == 5)
    }
}

/// The transactional delivery keeps its positions in Kafka, never here.
struct UnusedCheckpoints: InboundCheckpoints {
    func checkpoints(of topics: [String]) async throws -> [KafkaTopicPartition: InboundCheckpoint] {
        Issue.record("the transactional delivery read checkpoints")
        return [:]
    }

    func save(_ checkpoints: [KafkaTopicPartition: InboundCheckpoint]) async throws {
        Issue.record("the transactional delivery saved checkpoints")
    }
}
