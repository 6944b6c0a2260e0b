import AsyncHTTPClient
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import HealthCodeLocalServers
import HealthCodePostgres
import HealthCodeProjector
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// `healthcode bench freshness`: how soon a code answers a new event under a steady load. The
/// projector's capacity is measured first (a backlog produced straight to Kafka and applied); then the
/// gateway is fed at a steady rate (default half that capacity) while, several times a second, a probe
/// publishes a positive PCR for a new person and asks `GET /v1/people/{p}/code` until it answers red:
/// the time from the gateway's 202 to that answer. The baseline is the capacity measured in the same run.
public struct FreshnessBenchmark: Sendable {
    /// Settings.
    public struct Options: Sendable {
        /// How long the steady load runs. Default 30 s.
        public var duration: Duration = .seconds(30)
        /// Events per second fed to the gateway; `nil`: half the projector capacity measured first.
        public var rate: Int?
        /// Events of the backlog that measures the projector's capacity. 100 000 (3–5 s) measured anything
        /// from 20k to 43k ev/s from run to run; 300 000 measured 31k twice. Default 300 000.
        public var capacityEvents = 300_000
        /// Events per request of the steady load. Default 100.
        public var batchSize = 100
        /// Time between two probes. Default 200 ms.
        public var probeInterval: Duration = .milliseconds(200)
        /// Partitions of the topic. Default 8.
        public var partitions = 8
        /// Repository root (scripts/infra.sh, projections/migrations).
        public var root: URL

        public init(root: URL) { self.root = root }
    }

    /// What was measured.
    public struct Result: Sendable {
        /// Milliseconds from 202 to the changed code, per probe, ascending.
        public var latencies: [Double]
        public var rate: Double
        public var capacity: Double
        /// Probes that never saw their code change within 30 s.
        public var lost: Int

        public func percentile(_ fraction: Double) -> Double {
            guard !latencies.isEmpty else { return .infinity }
            return latencies[min(latencies.count - 1, Int((Double(latencies.count) * fraction).rounded(.up)) - 1)]
        }

        /// The last line: `bench freshness: p50 X ms, p99 Y ms at N ev/s, projector capacity M ev/s`.
        public var line: String {
            "bench freshness: p50 \(Int(percentile(0.5))) ms, p99 \(Int(percentile(0.99))) ms at \(Int(rate)) ev/s, "
                + "projector capacity \(Int(capacity)) ev/s"
        }
    }

    private let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    static let source = "urn:hc:publisher:bench-freshness"

    /// A test result of a person, as a publisher sends it (raw identifier).
    static func event(id: String, person: String, result: String, time: Instant) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"hc.test-result.v1","subject":"\#(person)","time":"\#(time.rfc3339Seconds)","data":{"test":"pcr","result":"\#(result)","lab":"BENCH-LAB"}}"#
    }

    public func run() async throws -> Result {
        try await BenchBackbone.with(root: options.root, partitions: options.partitions, logger: logger) {
            try await measure($0)
        }
    }

    private func measure(_ backbone: BenchBackbone) async throws -> Result {
        let key = try await backbone.registerPublisher(
            Self.source,
            eventTypes: ["hc.test-result.v1"],
            rateLimit: PublisherRateLimit(eventsPerSecond: 10_000_000, burstEvents: 10_000_000)
        )
        let pseudonymizer = try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey())
        let capacity = try await projectorCapacity(backbone, pseudonymizer: pseudonymizer)
        logger.info("projector capacity", metadata: ["eventsPerSecond": "\(Int(capacity))"])
        let rate = Double(options.rate ?? max(1, Int(capacity / 2)))

        // Each service with its own role, as `healthcode up` runs them.
        let client = PostgresClient(configuration: backbone.postgres(role: .projector), backgroundLogger: logger)
        let gatewayClient = PostgresClient(configuration: backbone.postgres(role: .gateway), backgroundLogger: logger)
        let apiClient = PostgresClient(configuration: backbone.postgres(role: .api), backgroundLogger: logger)
        var gatewayConfiguration = GatewayConfiguration()
        gatewayConfiguration.port = 0
        gatewayConfiguration.bootstrapServers = backbone.topic.bootstrapServers
        gatewayConfiguration.topic = backbone.topic.topic
        var apiConfiguration = QueryAPIConfiguration()
        apiConfiguration.port = 0
        apiConfiguration.signingKeysDirectory = backbone.servers.directory.appendingPathComponent("keys").path
        // The probes read as a checkpoint platform, polling each person every 20 ms: not to be throttled.
        apiConfiguration.personRateLimit = RequestRateLimit(requestsPerSecond: 1_000_000, burst: 1_000_000)
        let readerKey = try await Backbone.withPostgres(backbone.postgres(), logger: logger) { client in
            try await Backbone.registerPlatform(
                id: "urn:hc:platform:bench-freshness",
                kind: .checkpoint,
                rateLimit: RequestRateLimit(requestsPerSecond: 1_000_000, burst: 1_000_000),
                replacing: true,
                postgres: client,
                logger: logger
            )
        }
        let ports = Mutex((gateway: 0, api: 0))
        let started = StartupSignal(components: 2)
        let gateway = try Gateway.build(
            configuration: gatewayConfiguration,
            pseudonymizer: pseudonymizer,
            stores: .postgres(
                gatewayClient,
                configuration: gatewayConfiguration,
                ruleSet: try ruleSet(),
                logger: logger
            ),
            onServerRunning: { port in
                ports.withLock { $0.gateway = port }
                started.ready()
            },
            logger: logger
        )
        let projector = try Projector.build(
            configuration: projectorConfiguration(backbone),
            storage: ProjectionStore(client: client, logger: logger),
            ruleSet: try ruleSet(),
            logger: logger
        )
        let api = try await Backbone.queryAPI(
            configuration: apiConfiguration,
            postgres: apiClient,
            codeReadPostgres: backbone.postgres(connections: 2, role: .api),
            ruleSet: try ruleSet(),
            pseudonymizer: pseudonymizer,
            createSigningKey: true,
            metrics: nil,
            onServerRunning: { port in
                ports.withLock { $0.api = port }
                started.ready()
            },
            logger: logger
        )
        let latencies = Mutex<[Double]>([])
        let lost = Mutex(0)
        let options = options
        try await backbone.withServices(
            [client, gatewayClient, apiClient] + projector.services + gateway + api.services
        ) {
            await started.wait()
            let (gatewayPort, apiPort) = ports.withLock { ($0.gateway, $0.api) }
            let load = SteadyLoad(
                endpoint: "http://127.0.0.1:\(gatewayPort)/v1/events",
                credential: key,
                apiBase: "http://127.0.0.1:\(apiPort)",
                readerKey: readerKey,
                pseudonymizer: pseudonymizer
            )
            try await load.run(rate: rate, options: options) { latency in
                if let latency { latencies.withLock { $0.append(latency) } } else { lost.withLock { $0 += 1 } }
            }
        }
        return Result(
            latencies: latencies.withLock { $0 }.sorted(),
            rate: rate,
            capacity: capacity,
            lost: lost.withLock { $0 }
        )
    }

    private func ruleSet() throws -> RuleSet {
        try RuleSet.decode(
            Array(Data(contentsOf: options.root.appendingPathComponent("projections/rules/reference-v1.json")))
        )
    }

    private func projectorConfiguration(_ backbone: BenchBackbone) -> ProjectorConfiguration {
        var configuration = ProjectorConfiguration()
        configuration.bootstrapServers = backbone.topic.bootstrapServers
        configuration.topic = backbone.topic.topic
        configuration.assignment = .direct
        return configuration
    }

    /// Events per second the projector applies from a backlog of new people's test results.
    private func projectorCapacity(_ backbone: BenchBackbone, pseudonymizer: Pseudonymizer) async throws -> Double {
        let now = Instant.now()
        let messages = try (0..<options.capacityEvents).map { index in
            let line = Self.event(id: "c-\(index)", person: "CAPACITY-\(index / 2)", result: "negative", time: now)
            var event = try EventDecoder.decode(Array(line.utf8))
            event.subject = pseudonymizer.pseudonym(of: event.subject)
            event.recordedTime = now
            return KafkaOutgoingMessage(
                topic: backbone.topic.topic,
                key: Array(event.subject.utf8),
                value: event.jsonBytes()
            )
        }
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: backbone.topic.bootstrapServers),
            logger: logger
        )
        try await backbone.withServices([producer]) {
            for start in stride(from: 0, to: messages.count, by: 10_000) {
                _ = try await producer.send(Array(messages[start..<min(start + 10_000, messages.count)]))
            }
        }
        let client = PostgresClient(configuration: backbone.postgres(), backgroundLogger: logger)
        let configuration = projectorConfiguration(backbone)
        let storage = ProjectionStore(client: client, logger: logger)
        let projector = try Projector.build(
            configuration: configuration,
            storage: storage,
            ruleSet: try ruleSet(),
            logger: logger
        )
        let topic = backbone.topic
        return try await backbone.withServices([client] + projector.services) {
            let started = ContinuousClock.now
            while try await !Projector.caughtUp(
                topic: topic.topic,
                partitions: topic.partitions,
                group: configuration.group,
                consumer: projector.consumer,
                storage: storage
            ) {
                try await Task.sleep(for: .milliseconds(100))
            }
            let elapsed = ContinuousClock.now - started
            return Double(messages.count)
                / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
    }
}

/// The steady load of ``FreshnessBenchmark``: batches at a fixed rate, and probes whose codes are
/// watched until they change.
private struct SteadyLoad: Sendable {
    let endpoint: String
    let credential: String
    let apiBase: String
    /// The checkpoint platform's key the probes read with.
    let readerKey: String
    let pseudonymizer: Pseudonymizer

    /// Feeds `rate` events/s for `options.duration`; `record` gets each probe's milliseconds from 202 to
    /// the red code, or `nil` if it did not turn red within 30 s.
    func run(
        rate: Double,
        options: FreshnessBenchmark.Options,
        record: @escaping @Sendable (Double?) -> Void
    ) async throws {
        let batchSize = options.batchSize
        let interval = Duration.seconds(Double(batchSize) / rate)
        let end = ContinuousClock.now + options.duration
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Open loop: a batch is due every interval whether or not the previous ones were answered,
            // with at most 64 requests outstanding.
            group.addTask {
                var due = ContinuousClock.now
                var sequence = 0
                try await withThrowingTaskGroup(of: Void.self) { requests in
                    var outstanding = 0
                    while due < end {
                        try await Task.sleep(until: due)
                        if outstanding >= 64 {
                            try await requests.next()
                            outstanding -= 1
                        }
                        let now = Instant.now()
                        let body = (0..<batchSize).map { index in
                            FreshnessBenchmark.event(
                                id: "l-\(sequence)-\(index)",
                                person: "LOAD-\(sequence % 5_000)-\(index)",
                                result: "negative",
                                time: now - .seconds(3600)
                            )
                        }.joined(separator: "\n")
                        sequence += 1
                        requests.addTask { _ = try await post(body) }
                        outstanding += 1
                        due = due + interval
                    }
                    try await requests.waitForAll()
                }
            }
            group.addTask {
                var probe = 0
                try await withThrowingTaskGroup(of: Void.self) { probes in
                    while ContinuousClock.now < end {
                        let person = "PROBE-\(probe)"
                        probe += 1
                        probes.addTask { record(try await watch(person)) }
                        try await Task.sleep(for: options.probeInterval)
                    }
                    try await probes.waitForAll()
                }
            }
            try await group.waitForAll()
        }
    }

    /// Publishes a positive PCR for `person` and asks for its code every 20 ms until it is red:
    /// milliseconds from the 202 to that answer.
    func watch(_ person: String) async throws -> Double? {
        let line = FreshnessBenchmark.event(
            id: "p-\(person)",
            person: person,
            result: "positive",
            time: Instant.now() - .seconds(60)
        )
        guard try await post(line) == 202 else { return nil }
        let accepted = ContinuousClock.now
        let url = apiBase + "/v1/people/\(pseudonymizer.pseudonym(of: person))/code"
        while ContinuousClock.now - accepted < .seconds(30) {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "Bearer \(readerKey)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            if String(buffer: body).contains(#""status":"red""#) {
                let elapsed = ContinuousClock.now - accepted
                return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            }
            // Every 20 ms: a finer poll would itself load the API and PostgreSQL in proportion to the
            // latency it measures (at 5 ms, ten waiting probes made 2 000 uncached lookups a second).
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func post(_ body: String) async throws -> Int {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
        request.headers.add(name: "Authorization", value: "Bearer \(credential)")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }
}
