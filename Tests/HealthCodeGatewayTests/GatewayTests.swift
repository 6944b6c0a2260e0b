import Foundation
import HTTPTypes
import HealthCodeCore
import HealthCodeGateway
import HealthCodeTestSupport
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@testable import HealthCodeKafka

/// The gateway over HTTP (Hummingbird's in-process test client) with its real Kafka producer on
/// librdkafka's mock cluster.
@Suite struct GatewayTests {
    static let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    static let fixedNow = Instant(rfc3339: "2020-04-03T12:00:00Z")!

    func event(id: String, subject: String = "440106199001011234", result: String = "positive") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:gd","type":"hc.test-result.v1","subject":"\#(subject)","time":"2020-04-03T08:00:00Z","data":{"test":"pcr","result":"\#(result)","lab":"GZ"}}"#
    }

    struct Answer: Decodable {
        struct Result: Decodable {
            struct Failure: Decodable {
                var code: String
                var field: String
                var reason: String
            }
            var index: Int
            var id: String?
            var status: String
            var partition: Int32?
            var offset: Int64?
            var errors: [Failure]?
            var retriable: Bool?
            var heldId: Int64?
        }
        var accepted: Int
        var duplicate: Int
        var rejected: Int
        var failed: Int
        var held: Int?
        var results: [Result]
    }

    /// The API key of the test publisher `urn:hc:publisher:gd` (test results and retractions).
    static let apiKey = "hcpk_" + String(repeating: "ab", count: 32)
    /// Its `Authorization` header value.
    static let bearer = "Bearer \(apiKey)"
    /// The API key of the review office `urn:hc:publisher:review` (reviews).
    static let reviewAPIKey = "hcpk_" + String(repeating: "cd", count: 32)
    /// The ES256 key of `urn:hc:publisher:cdc` (exposures), which signs client assertions.
    static let cdcKey = ES256PrivateKey()

    /// The registered publishers of these tests; `revoked` marks `urn:hc:publisher:gd` revoked.
    static func publishers(revoked: Bool = false) throws -> [PublisherRecord] {
        var gd = PublisherRecord.apiKey(
            id: "urn:hc:publisher:gd",
            apiKey: apiKey,
            eventTypes: ["hc.test-result.v1", "hc.retraction.v1"]
        )
        gd.revokedAt = revoked ? fixedNow : nil
        return [
            gd,
            try .es256(
                id: "urn:hc:publisher:cdc",
                publicKeyPEM: cdcKey.publicKey.pemRepresentation,
                eventTypes: ["hc.exposure.v1"]
            ),
            .apiKey(id: "urn:hc:publisher:review", apiKey: reviewAPIKey, eventTypes: ["hc.review.v1"]),
        ]
    }

    /// Runs `body` against a gateway whose producer writes to a fresh mock cluster.
    func withGateway(
        configuration base: GatewayConfiguration = GatewayConfiguration(),
        retractionTargets: any RetractionTargets = InMemoryRetractionTargets(),
        reviewOffices: any ReviewOffices = InMemoryReviewOffices(),
        designations: InMemoryDesignations = InMemoryDesignations(),
        registry: ((GatewayConfiguration) -> PublisherRegistry)? = nil,
        producerRebuildDelay: Duration = .seconds(1),
        producerCreated: @Sendable (KafkaProducer) -> Void = { _ in },
        live: Bool = false,
        _ body: @escaping @Sendable (any TestClientProtocol, KafkaMockCluster, String) async throws -> Void
    ) async throws {
        var logger = Logger(label: "gateway-tests")
        logger.logLevel = .error
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = "events"
        try cluster.createTopic(topic, partitions: 4)
        var configuration = base
        configuration.topic = topic
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        producerConfiguration.fatalErrorRebuildDelay = producerRebuildDelay
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        producerCreated(producer)
        let ingestion = EventIngestion(
            log: KafkaEventLog(producer: producer, topic: topic),
            pseudonymizer: try Pseudonymizer(hexKey: Self.key),
            configuration: configuration,
            retractionTargets: retractionTargets,
            reviewOffices: reviewOffices,
            designations: designations,
            now: { Self.fixedNow },
            logger: logger
        )
        let publishers =
            registry?(configuration)
            ?? PublisherRegistry(
                directory: InMemoryPublisherDirectory { try Self.publishers() },
                assertionUses: InMemoryAssertionUses(),
                configuration: configuration,
                logger: logger
            )
        try await publishers.refresh()
        let router = GatewayApplication.router(
            ingestion: ingestion,
            publishers: publishers,
            configuration: configuration
        )
        // Live: a real HTTP server on a free port, with the configured timeouts.
        let application = Application(
            router: router,
            server: configuration.timeouts.server,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: logger
        )
        let group = ServiceGroup(services: [producer], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            try await application.test(live ? .live : .router) { client in
                try await body(client, cluster, topic)
            }
            await group.triggerGracefulShutdown()
        }
    }

    func post(
        _ client: any TestClientProtocol,
        _ body: String,
        authorization: String? = GatewayTests.bearer
    ) async throws -> (HTTPResponse.Status, Answer?, TestResponse) {
        var headers: HTTPFields = [.contentType: "application/x-ndjson"]
        headers[.authorization] = authorization
        return try await client.execute(
            uri: "/v1/events",
            method: .post,
            headers: headers,
            body: ByteBuffer(string: body)
        ) { response in
            let answer = try? JSONDecoder().decode(Answer.self, from: Data(response.body.readableBytesView))
            return (response.status, answer, response)
        }
    }

    @Test("a valid batch is acknowledged by Kafka before 202, with partition and offset per event")
    func acceptsValidBatch() async throws {
        try await withGateway { client, _, _ in
            let lines = (0..<20).map { event(id: "e\($0)", subject: "ID-\($0)") }.joined(separator: "\n")
            let (status, answer, _) = try await post(client, lines)
            #expect(status == .accepted)
            #expect(answer?.accepted == 20)
            #expect(
                answer?.results.allSatisfy { $0.status == "accepted" && $0.offset != nil && $0.partition != nil }
                    == true
            )
            #expect(answer?.results.map(\.id) == (0..<20).map { "e\($0)" })
        }
    }

    @Test("a JSON array works as well as NDJSON")
    func acceptsJSONArray() async throws {
        try await withGateway { client, _, _ in
            let (status, answer, _) = try await post(client, "[\(event(id: "a")),\(event(id: "b"))]")
            #expect(status == .accepted)
            #expect(answer?.accepted == 2)
        }
    }

    @Test("every invalid event is named with its index, id and field; a batch with none valid is 422")
    func rejectsInvalidEvents() async throws {
        try await withGateway { client, _, _ in
            let body = [event(id: "x1", result: "maybe"), #"{"specversion":"1.0","id":"x2"}"#].joined(separator: "\n")
            let (status, answer, _) = try await post(client, body)
            #expect(status == .unprocessableContent)
            #expect(answer?.rejected == 2)
            let first = answer?.results.first
            #expect(first?.index == 0)
            #expect(first?.id == "x1")
            #expect(first?.errors?.first?.field == "data.result")
            #expect(answer?.results.last?.index == 1)
        }
    }

    @Test("a mixed batch accepts the valid events and rejects the others")
    func mixedBatch() async throws {
        try await withGateway { client, _, _ in
            let body = [event(id: "ok"), event(id: "bad", result: "unknown")].joined(separator: "\n")
            let (status, answer, _) = try await post(client, body)
            #expect(status == .accepted)
            #expect(answer?.results.map(\.status) == ["accepted", "rejected"])
        }
    }

    @Test("an event timed in the future is rejected on its time field")
    func rejectsFutureEvents() async throws {
        try await withGateway { client, _, _ in
            let future = event(id: "soon").replacingOccurrences(
                of: "2020-04-03T08:00:00Z",
                with: "2020-04-03T12:06:00Z"
            )
            let withinSkew = event(id: "skew").replacingOccurrences(
                of: "2020-04-03T08:00:00Z",
                with: "2020-04-03T12:04:00Z"
            )
            let (status, answer, _) = try await post(client, future + "\n" + withinSkew)
            #expect(status == .accepted)
            #expect(answer?.results.map(\.status) == ["rejected", "accepted"])
            #expect(answer?.results.first?.errors?.first?.field == "time")
        }
    }

    @Test("a broken JSON array is a 400 problem; a broken NDJSON line is rejected on its own")
    func rejectsGarbage() async throws {
        try await withGateway { client, _, _ in
            let (arrayStatus, _, arrayResponse) = try await post(client, "[" + event(id: "cut"))
            #expect(arrayStatus == .badRequest)
            #expect(arrayResponse.headers[.contentType] == "application/problem+json")

            let (lineStatus, answer, _) = try await post(client, "this is not json\n" + event(id: "fine"))
            #expect(lineStatus == .accepted)
            #expect(answer?.results.map(\.status) == ["rejected", "accepted"])
            #expect(answer?.results.first?.errors?.first?.code == "malformed-json")
        }
    }

    @Test("more events than allowed, or a body too large, is a 413")
    func enforcesLimits() async throws {
        var limits = GatewayConfiguration()
        limits.maximumBatchEvents = 3
        limits.maximumBodyBytes = 2_000
        try await withGateway(configuration: limits) { client, _, _ in
            let four = (0..<4).map { event(id: "e\($0)") }.joined(separator: "\n")
            let (tooMany, _, _) = try await post(client, four)
            #expect(tooMany == .contentTooLarge)
            let big = String(repeating: " ", count: 3_000) + event(id: "big")
            let (tooLarge, _, _) = try await post(client, big)
            #expect(tooLarge == .contentTooLarge)
        }
    }

    @Test("a fatal producer error makes /health and ingest answer 503 until the producer is rebuilt")
    func fatalProducerError() async throws {
        let captured = Mutex<KafkaProducer?>(nil)
        let capture: @Sendable (KafkaProducer) -> Void = { producer in captured.withLock { $0 = producer } }
        try await withGateway(producerRebuildDelay: .seconds(3), producerCreated: capture) { client, _, _ in
            let producer = try #require(captured.withLock { $0 })
            #expect(try await post(client, event(id: "before")).0 == .accepted)
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
            producer.injectFatalError()
            let clock = ContinuousClock()
            let noticed = clock.now + .seconds(3)
            var health = try await client.execute(uri: "/health", method: .get)
            while health.status == .ok, clock.now < noticed {
                try await Task.sleep(for: .milliseconds(20))
                health = try await client.execute(uri: "/health", method: .get)
            }
            #expect(health.status == .serviceUnavailable)
            #expect(String(buffer: health.body).contains("event-log-unavailable"))
            let (during, answer, response) = try await post(client, event(id: "during"))
            #expect(during == .serviceUnavailable, "ingest while the producer is rebuilt")
            #expect(answer?.results.map(\.status) == ["failed"])
            #expect(response.headers[.retryAfter] != nil)
            let deadline = clock.now + .seconds(10)
            while producer.rebuilds == 0, clock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok, "rebuilt")
            #expect(try await post(client, event(id: "during")).0 == .accepted, "the re-sent event is accepted")
        }
    }

    @Test("when Kafka refuses the events the gateway answers 503 with Retry-After, never 2xx")
    func brokerRefusalIs503() async throws {
        try await withGateway { client, cluster, _ in
            cluster.failNextRequests(.produce, with: Array(repeating: .topicAuthorizationFailed, count: 4))
            let (status, answer, response) = try await post(client, event(id: "refused"))
            #expect(status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "1")
            #expect(answer?.failed == 1)
            #expect(answer?.accepted == 0)
        }
    }
}

/// The events as they reach Kafka: pseudonymised, stamped, nothing raw.
@Suite struct IngestionTests {
    final class RecordingLog: EventLog {
        let records = Mutex<[EventRecord]>([])
        var isWriting: Bool { true }
        func append(_ records: [EventRecord]) async -> [Result<EventPosition, EventLogError>] {
            self.records.withLock { $0.append(contentsOf: records) }
            return records.indices.map { .success(EventPosition(partition: 0, offset: Int64($0))) }
        }
    }

    @Test("person subjects become pseudonyms, area codes stay, recordedtime is the acceptance instant")
    func pseudonymisesAndStamps() async throws {
        let log = RecordingLog()
        let pseudonymizer = try Pseudonymizer(hexKey: GatewayTests.key)
        let ingestion = EventIngestion(
            log: log,
            pseudonymizer: pseudonymizer,
            configuration: GatewayConfiguration(),
            retractionTargets: InMemoryRetractionTargets(),
            reviewOffices: InMemoryReviewOffices(),
            designations: InMemoryDesignations(),
            now: { GatewayTests.fixedNow },
            logger: Logger(label: "test")
        )
        let area =
            #"{"specversion":"1.0","id":"a1","source":"urn:hc:publisher:sc","type":"hc.risk-area.v1","subject":"420106","time":"2020-04-01T00:00:00Z","data":{"level":"high","effectiveFrom":"2020-04-01T00:00:00Z"}}"#
        let ahead = GatewayTests().event(id: "ahead").replacingOccurrences(
            of: "2020-04-03T08:00:00Z",
            with: "2020-04-03T12:01:00Z"
        )
        let body = [GatewayTests().event(id: "p1", subject: "440106199001011234"), area, ahead].joined(separator: "\n")
        let publisher = Publisher(id: "urn:hc:publisher:gd", eventTypes: ["hc.test-result.v1"])
        let council = Publisher(id: "urn:hc:publisher:sc", eventTypes: ["hc.risk-area.v1"])
        guard case .processed(let personResults) = await ingestion.ingest(Array(body.utf8), from: publisher),
            case .processed(let areaResults) = await ingestion.ingest(Array(area.utf8), from: council)
        else {
            Issue.record("the batch was not processed")
            return
        }
        #expect(personResults.map(\.status) == [.accepted, .rejected, .accepted])
        #expect(personResults[1].errors?.first?.code == "forbidden-source")
        #expect(areaResults.map(\.status) == [.accepted])
        let records = log.records.withLock { $0 }
        let person = try EventDecoder.decode(records[0].value)
        #expect(person.subject == pseudonymizer.pseudonym(of: "440106199001011234"))
        #expect(records[0].key == person.subject)
        #expect(person.recordedTime == GatewayTests.fixedNow)
        #expect(!String(decoding: records[0].value, as: UTF8.self).contains("440106199001011234"))
        // Timed a minute ahead of the gateway's clock (within the skew): recorded when accepted, not moved
        // up to its time, so that codes evaluated before it happens end when it does.
        let early = try EventDecoder.decode(records[1].value)
        #expect(early.time == Instant(rfc3339: "2020-04-03T12:01:00Z"))
        #expect(early.recordedTime == GatewayTests.fixedNow)
        let designation = try EventDecoder.decode(records[2].value)
        #expect(designation.subject == "420106")
        #expect(records[2].key == "420106")
    }
}
