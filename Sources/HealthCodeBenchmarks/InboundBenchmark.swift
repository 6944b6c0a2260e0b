import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodeInbound
import HealthCodeKafka
import HealthCodeLocalServers
import HealthCodePostgres
import Logging
import PostgresNIO
import ServiceLifecycle

/// `healthcode bench inbound`: the ingest processor's rate from a publisher's inbound topic to the events topic
/// (validated, pseudonymised, checkpointed) against the rate at which a plain producer writes the same raw
/// messages to the inbound topic, measured in the same run on private servers.
public struct InboundBenchmark: Sendable {
    /// What to run.
    public struct Options: Sendable {
        /// Raw events the publisher produces. Default 200 000.
        public var messages = 200_000
        /// Partitions of the inbound topic. Default 4.
        public var inboundPartitions = 4
        /// Partitions of the events topic. Default 8.
        public var partitions = 8
        /// The repository root (scripts/infra.sh, projections/).
        public var root: URL

        public init(root: URL) { self.root = root }
    }

    /// The measurements.
    public struct Result: Sendable {
        public var messages: Int
        public var eventsPerSecond: Double
        public var producerMessagesPerSecond: Double

        public var ratio: Double { producerMessagesPerSecond > 0 ? eventsPerSecond / producerMessagesPerSecond : 0 }

        /// The closing line.
        public var summary: String {
            String(
                format: "bench inbound: %.0f ev/s, producer %.0f msg/s, ratio %.2f",
                eventsPerSecond,
                producerMessagesPerSecond,
                ratio
            )
        }
    }

    static let publisher = "urn:hc:publisher:bench-lab"

    private let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    public func run() async throws -> Result {
        try await BenchBackbone.with(root: options.root, partitions: options.partitions, logger: logger) {
            try await measure(on: $0)
        }
    }

    /// Raw test results as a lab's client writes them: structured CloudEvents JSON with the raw identifier.
    static func rawEvents(_ count: Int, anchor: Date) -> [[UInt8]] {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let time = formatter.string(from: anchor.addingTimeInterval(-3600))
        return (0..<count).map { index in
            let subject = "4401061990" + String(format: "%08d", index % 1_000_000)
            let result = index % 20 == 0 ? "positive" : "negative"
            return Array(
                #"{"specversion":"1.0","id":"lab-\#(index)","source":"\#(publisher)","type":"hc.test-result.v1","subject":"\#(subject)","time":"\#(time)","data":{"test":"pcr","result":"\#(result)","lab":"GZ-CDC"}}"#
                    .utf8
            )
        }
    }

    private func measure(on backbone: BenchBackbone) async throws -> Result {
        let topic = backbone.topic
        let inbound = InboundTopic.name(forPublisher: Self.publisher)
        try await Backbone.withPostgres(backbone.postgres(), logger: logger) { client in
            try await PublisherStore(client: client, logger: logger).add(
                PublisherRecord(
                    id: Self.publisher,
                    credential: .apiKeyHash(sha256Hex: PublisherAPIKey.hash(PublisherAPIKey.generate())),
                    eventTypes: [EventType.testResult.rawValue],
                    inboundTopic: inbound
                )
            )
        }
        var configuration = IngestProcessorConfiguration()
        configuration.bootstrapServers = topic.bootstrapServers
        configuration.eventsTopic = topic.topic
        configuration.inboundPartitions = options.inboundPartitions
        let admin = try KafkaAdmin(
            configuration: KafkaAdminConfiguration(bootstrapServers: topic.bootstrapServers),
            logger: logger
        )
        try await InboundTopics(admin: admin, configuration: configuration).ensure(inbound: [inbound])

        // The baseline: a plain producer writing the raw messages to the inbound topic (they are the input).
        let values = Self.rawEvents(options.messages, anchor: Date())
        let producerTime = try await produce(values, to: inbound, bootstrap: topic.bootstrapServers)
        logger.info("produced", metadata: ["messages": "\(values.count)", "seconds": "\(seconds(producerTime))"])

        // The processor, from its start until every inbound message is checkpointed.
        let rules = try backbone.ruleSet
        var gateway = GatewayConfiguration()
        gateway.bootstrapServers = topic.bootstrapServers
        gateway.topic = topic.topic
        let client = PostgresClient(
            configuration: backbone.postgres(connections: 4, role: .gateway),
            backgroundLogger: logger
        )
        let services =
            [client]
            + (try Inbound.build(
                configuration: configuration,
                gateway: gateway,
                pseudonymizer: try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey()),
                stores: .postgres(client, configuration: gateway, ruleSet: rules, logger: logger),
                checkpoints: InboundCheckpointStore(client: client, logger: logger),
                logger: logger
            ))
        let processingTime = try await Backbone.withServices(services, logger: logger) {
            let started = ContinuousClock.now
            let reader = PostgresClient(configuration: backbone.postgres(connections: 1), backgroundLogger: logger)
            return try await Backbone.withServices([reader], logger: logger) {
                while try await checkpointed(reader) < values.count {
                    try await Task.sleep(for: .milliseconds(20))
                }
                return ContinuousClock.now - started
            }
        }
        return Result(
            messages: values.count,
            eventsPerSecond: Double(values.count) / seconds(processingTime),
            producerMessagesPerSecond: Double(values.count) / seconds(producerTime)
        )
    }

    private func produce(_ values: [[UInt8]], to topic: String, bootstrap: [String]) async throws -> Duration {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: bootstrap),
            logger: logger
        )
        return try await Backbone.withServices([producer], logger: logger) {
            let started = ContinuousClock.now
            try await withThrowingTaskGroup { group in
                // Four senders of 5 000 messages at a time, keyed by lab so that each lab's order holds.
                for sender in 0..<4 {
                    group.addTask {
                        for start in stride(from: sender * 5000, to: values.count, by: 20_000) {
                            let messages = values[start..<min(start + 5000, values.count)].map {
                                KafkaOutgoingMessage(topic: topic, key: Array("lab-\(sender)".utf8), value: $0)
                            }
                            _ = try await producer.send(messages)
                        }
                    }
                }
                try await group.waitForAll()
            }
            return ContinuousClock.now - started
        }
    }

    private func checkpointed(_ client: PostgresClient) async throws -> Int {
        let rows = try await client.query(
            "SELECT coalesce(sum(next_offset), 0)::int8 FROM inbound_checkpoint",
            logger: logger
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
