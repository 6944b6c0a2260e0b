import AsyncHTTPClient
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodeInbound
import HealthCodeKafka
import HealthCodeLocalServers
import HealthCodePostgres
import HealthCodeTestSupport
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// Kafka-native publishing (issue 23): a publisher produces raw events to its inbound topic with a plain Kafka
/// producer; the ingest processor applies the gateway's rules and writes each message's one output.
@Suite(
    "Kafka-native publishing through the ingest processor",
    .enabled(if: LocalInfrastructure.serversTestsEnabled),
    .timeLimit(.minutes(5))
)
struct InboundProcessorTests {
    static let publisher = "urn:hc:publisher:test-bureau"

    /// Gives the test bureau an inbound topic of its own and only the test-result type.
    static func enrollKafkaPublisher(_ backbone: TestBackbone) async throws -> String {
        let inbound = InboundTopic.prefix + LocalInfrastructure.uniqueName("bureau")
        try await backbone.withDatabase { client in
            try await PublisherStore(client: client, logger: testLogger()).upsert(
                PublisherRecord(
                    id: publisher,
                    credential: .apiKeyHash(sha256Hex: PublisherAPIKey.hash(TestBackbone.apiKey(of: publisher))),
                    eventTypes: [EventType.testResult.rawValue],
                    inboundTopic: inbound
                )
            )
        }
        return inbound
    }

    static func processorConfiguration(_ backbone: TestBackbone) -> IngestProcessorConfiguration {
        var configuration = IngestProcessorConfiguration()
        configuration.bootstrapServers = backbone.topic.bootstrapServers
        configuration.eventsTopic = backbone.topic.topic
        configuration.inboundPartitions = 2
        configuration.refreshInterval = .seconds(1)
        configuration.batchMessages = 500
        return configuration
    }

    /// The ingest processor of `backbone`, in this process, with the gateway's role.
    static func processor(_ backbone: TestBackbone) throws -> [any Service] {
        let logger = testLogger()
        let client = PostgresClient(
            configuration: backbone.clientConfiguration(for: .gateway),
            backgroundLogger: logger
        )
        var gateway = GatewayConfiguration()
        gateway.bootstrapServers = backbone.topic.bootstrapServers
        gateway.topic = backbone.topic.topic
        return [client]
            + (try Inbound.build(
                configuration: processorConfiguration(backbone),
                gateway: gateway,
                pseudonymizer: backbone.pseudonymizer,
                stores: .postgres(client, configuration: gateway, ruleSet: backbone.ruleSet, logger: logger),
                checkpoints: InboundCheckpointStore(client: client, logger: logger),
                logger: logger
            ))
    }

    /// Produces `values` to `topic` with a plain producer (no header), as a publisher's client would; with a `key`,
    /// all to one partition in order.
    static func produce(_ values: [String], to topic: String, key: String? = nil, bootstrap: [String]) async throws {
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: bootstrap),
            logger: testLogger()
        )
        try await withServices([producer]) {
            for chunk in stride(from: 0, to: values.count, by: 1000) {
                _ = try await producer.send(
                    values[chunk..<min(chunk + 1000, values.count)].map {
                        KafkaOutgoingMessage(topic: topic, key: key.map { Array($0.utf8) }, value: Array($0.utf8))
                    }
                )
            }
        }
    }

    /// Every message of every partition of `topic` (read to the end a fetch reports).
    static func readAll(_ topic: String, partitions: Int, bootstrap: [String]) async throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: bootstrap),
            logger: testLogger()
        )
        let all = (0..<Int32(partitions)).map { KafkaTopicPartition(topic: topic, partition: $0) }
        return try await withServices([consumer]) {
            try consumer.assign(Dictionary(uniqueKeysWithValues: all.map { ($0, KafkaOffset.beginning) }))
            let ends = try await consumer.watermarks(for: all)
            var messages: [KafkaMessage] = []
            var positions: [KafkaTopicPartition: Int64] = [:]
            func done() -> Bool { all.allSatisfy { (positions[$0] ?? 0) >= (ends[$0]?.high ?? 0) } }
            if done() { return [] }
            for try await batch in consumer.batches {
                messages.append(contentsOf: batch)
                positions[batch.topicPartition] = batch.nextOffset
                if done() { break }
            }
            return messages
        }
    }

    static func origin(of message: KafkaMessage) -> String? {
        message.headers.first { $0.key == "hc-inbound" }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("raw events produced to the inbound topic are projected as through HTTP; refusals carry their reasons")
    func producedEventsAreProjected() async throws {
        let backbone = try await TestBackbone.make(partitions: 2)
        let inbound = try await Self.enrollKafkaPublisher(backbone)
        let person = "110101199001010011"
        let pseudonym = backbone.pseudonymizer.pseudonym(of: person)
        let valid = Events.testResult(id: "k-1", subject: person, time: Events.hoursAgo(2), result: "positive")
        let otherSource = Events.exposure(id: "k-2", subject: person, time: Events.hoursAgo(2))
        let otherType = otherSource.replacingOccurrences(of: "test-cdc", with: "test-bureau")
            .replacingOccurrences(of: "k-2", with: "k-3")
        let future = Events.testResult(id: "k-4", subject: person, time: "2999-01-01T00:00:00Z", result: "positive")
        let values = [valid, otherSource, otherType, "{not json", future, valid]
        try await withServices(try Self.processor(backbone)) {
            try await backbone.withRunningBackbone { _, _, probe in
                try await Self.produce(values, to: inbound, key: "lab-1", bootstrap: backbone.topic.bootstrapServers)
                let deadline = ContinuousClock.now + .seconds(60)
                while try await count(probe.client, "SELECT count(*) FROM person_code WHERE status = 'red'") < 1 {
                    guard ContinuousClock.now < deadline else { throw TestFailure("no red code within 60 s") }
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await probe.waitUntilCaughtUp()
                #expect(
                    try await count(probe.client, "SELECT count(*) FROM person_code WHERE subject = '\(pseudonym)'")
                        == 1,
                    "the person's code is kept under the pseudonym"
                )
                #expect(try await count(probe.client, "SELECT count(*) FROM event_archive") == 1)
            }
        }
        let events = try await Self.readAll(
            backbone.topic.topic,
            partitions: 2,
            bootstrap: backbone.topic.bootstrapServers
        )
        #expect(events.count == 1, "one valid event reaches the events topic")
        let event = try #require(events.first)
        #expect(event.key.map { String(decoding: $0, as: UTF8.self) } == pseudonym, "keyed by the pseudonym")
        let body = String(decoding: event.value, as: UTF8.self)
        #expect(!body.contains(person), "the raw identifier never reaches the events topic")
        #expect(body.contains("\"recordedtime\""))

        let rejects = try await Self.readAll(
            InboundTopic.rejects(ofInbound: inbound),
            partitions: 2,
            bootstrap: backbone.topic.bootstrapServers
        )
        let outcomes = rejects.map { message -> (offset: Int64, status: String, codes: [String]) in
            let json = (try? JSONSerialization.jsonObject(with: Data(message.value)) as? [String: Any]) ?? [:]
            let inbound = json["inbound"] as? [String: Any] ?? [:]
            let errors = json["errors"] as? [[String: Any]] ?? []
            return (
                (inbound["offset"] as? NSNumber)?.int64Value ?? -1, json["status"] as? String ?? "",
                errors.compactMap { $0["code"] as? String }
            )
        }
        .sorted { $0.offset < $1.offset }
        #expect(outcomes.map(\.status) == ["rejected", "rejected", "rejected", "rejected", "duplicate"])
        #expect(outcomes.map(\.offset) == [1, 2, 3, 4, 5])
        #expect(outcomes.first?.codes == [EventProblem.forbiddenSource])
        #expect(outcomes.dropFirst().first?.codes == [EventProblem.forbiddenType])
        #expect(outcomes.dropFirst(2).first?.codes == ["malformed-json"])
        #expect(outcomes.dropFirst(3).first?.codes == ["invalid-value"], "an event timed in the future")
        for reject in rejects {
            #expect(!String(decoding: reject.value, as: UTF8.self).contains(person), "no raw identifier in a reject")
        }
    }

    @Test("a processor killed (SIGKILL) again and again under load loses and duplicates nothing")
    func killLoop() async throws {
        let backbone = try await TestBackbone.make(partitions: 4)
        let inbound = try await Self.enrollKafkaPublisher(backbone)
        let total = 20_000
        let values = (0..<total).map { index in
            index % 10 == 9
                ? Events.exposure(
                    id: "x-\(index)",
                    subject: "11010119900101\(String(format: "%04d", index % 5000))",
                    time: Events.hoursAgo(3)
                )
                : Events.testResult(
                    id: "t-\(index)",
                    subject: "11010119900101\(String(format: "%04d", index % 5000))",
                    time: Events.hoursAgo(3),
                    result: index % 3 == 0 ? "positive" : "negative"
                )
        }
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in backbone.projectorSettings { environment[name] = value }
        environment["HC_PSEUDONYM_KEY"] = TestBackbone.key
        environment["HC_INBOUND_PARTITIONS"] = "2"
        environment["HC_INBOUND_BATCH"] = "200"
        environment["HC_INBOUND_REFRESH_SECONDS"] = "1"
        let metricsPort = try freePort()
        environment["HC_INBOUND_METRICS_PORT"] = "\(metricsPort)"
        func start() throws -> Process {
            let process = Process()
            process.executableURL = healthcodeExecutable
            process.arguments = ["ingest-processor"]
            process.environment = environment
            process.currentDirectoryURL = LocalInfrastructure.repositoryRoot
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        func outputs() async throws -> Int {
            try await backbone.withDatabase {
                try await count($0, "SELECT coalesce(sum(next_offset), 0)::int8 FROM inbound_checkpoint")
            }
        }
        // The topics exist before the publisher produces (the processor creates them on its first session).
        let admin = try KafkaAdmin(
            configuration: KafkaAdminConfiguration(bootstrapServers: backbone.topic.bootstrapServers),
            logger: testLogger()
        )
        try await InboundTopics(admin: admin, configuration: Self.processorConfiguration(backbone)).ensure(
            inbound: [inbound]
        )
        async let produced: Void = Self.produce(values, to: inbound, bootstrap: backbone.topic.bootstrapServers)
        var kills = 0
        var previous = -1
        for round in 0..<6 {
            let process = try start()
            let deadline = ContinuousClock.now + .seconds(30)
            // Killed at a different point of each round: as soon as it has moved on, after a few batches more.
            let target = min(total - 1, (round + 1) * total / 8)
            while try await outputs() < target, ContinuousClock.now < deadline, process.isRunning {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...40)))
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            kills += 1
            let now = try await outputs()
            #expect(now >= previous, "checkpoints never move back")
            previous = now
        }
        try await produced
        let last = try start()
        let deadline = ContinuousClock.now + .seconds(120)
        while try await outputs() < total {
            guard ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let health = try await HTTP.get("http://127.0.0.1:\(metricsPort)/health")
        #expect(health.status == 200)
        #expect(health.json["status"] as? String == "processing")
        let metrics = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"),
            timeout: .seconds(10)
        )
        let exposition = String(buffer: try await metrics.body.collect(upTo: 1 << 22))
        #expect(exposition.contains("hc_inbound_messages_total"), "the processor's counters are exported")
        kill(last.processIdentifier, SIGTERM)
        last.waitUntilExit()
        #expect(last.terminationStatus == 0, "SIGTERM ends the processor gracefully")
        #expect(kills == 6)
        #expect(try await outputs() == total, "every inbound message checkpointed")

        let events = try await Self.readAll(
            backbone.topic.topic,
            partitions: 4,
            bootstrap: backbone.topic.bootstrapServers
        )
        let rejects = try await Self.readAll(
            InboundTopic.rejects(ofInbound: inbound),
            partitions: 2,
            bootstrap: backbone.topic.bootstrapServers
        )
        var seen: [String: Int] = [:]
        for message in events + rejects {
            seen[Self.origin(of: message) ?? "none", default: 0] += 1
        }
        let duplicated = seen.filter { $0.value > 1 }
        #expect(duplicated.isEmpty, "outputs written twice: \(duplicated.prefix(5))")
        #expect(seen.count == total, "one output per inbound message: \(seen.count) of \(total)")
        #expect(events.count == total - total / 10, "the test results are events")
        #expect(rejects.count == total / 10, "the exposures (not the bureau's type) are rejects")
    }

    @Test("publishers add --kafka creates the inbound and rejects topics, stores the topic and prints the ACLs")
    func addKafkaPublisher() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let id = "urn:hc:publisher:" + LocalInfrastructure.uniqueName("rail")
        let (status, output) = try await AnalystCommandTests.healthcode(
            [
                "publishers", "add", "--id", id, "--types", "hc.travel.v1", "--kafka", "--inbound-partitions", "3",
                "--kafka-bootstrap", backbone.topic.bootstrapServers.joined(separator: ","),
            ],
            on: backbone
        )
        #expect(status == 0)
        let inbound = InboundTopic.name(forPublisher: id)
        #expect(output.contains("produces to Kafka topic \(inbound)"))
        #expect(output.contains("--operation Write --operation Describe --topic \(inbound)"))
        let admin = try KafkaAdmin(
            configuration: KafkaAdminConfiguration(bootstrapServers: backbone.topic.bootstrapServers),
            logger: testLogger()
        )
        let described = try await admin.describeTopics([inbound, InboundTopic.rejects(ofInbound: inbound)])
        #expect(described.map(\.partitions.count) == [3, 3])
        let stored = try await backbone.withDatabase { client in
            try await PublisherStore(client: client, logger: testLogger()).all().first { $0.id == id }
        }
        #expect(stored?.inboundTopic == inbound)
        let (_, list) = try await AnalystCommandTests.healthcode(["publishers", "list"], on: backbone)
        #expect(list.contains("\tactive\t\(inbound)\n"), "the list names the inbound topic")

        let (refused, _) = try await AnalystCommandTests.healthcode(
            ["publishers", "add", "--id", id + "-2", "--types", "hc.travel.v1", "--inbound-topic", "x"],
            on: backbone
        )
        #expect(refused != 0, "--inbound-topic without --kafka, and outside the prefix, is refused")
    }
}
