import Crypto
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import HealthCodeLocalServers
import HealthCodePostgres
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A private backbone for a benchmark: scratch PostgreSQL and broker on free loopback ports, a
/// migrated database, a topic, and the services under test on port 0.
struct BenchBackbone: Sendable {
    let servers: ScratchServers
    var ruleSet: RuleSet {
        get throws {
            try RuleSet.decode(
                [UInt8](
                    try Data(contentsOf: servers.root.appendingPathComponent("projections/rules/reference-v1.json"))
                )
            )
        }
    }
    let topic: EventTopicConfiguration
    let logger: Logger

    static func start(root: URL, partitions: Int, logger: Logger) async throws -> BenchBackbone {
        let servers = try await ScratchServers.start(root: root)
        var topic = EventTopicConfiguration()
        topic.bootstrapServers = [servers.kafkaBootstrapServers]
        topic.topic = "bench.events"
        topic.partitions = partitions
        let backbone = BenchBackbone(servers: servers, topic: topic, logger: logger)
        do {
            try await Backbone.withPostgres(backbone.postgres(database: "healthcode"), logger: logger) {
                _ = try await $0.query("CREATE DATABASE bench", logger: logger)
            }
            let migrations = try SchemaMigrator.migrations(in: root.appendingPathComponent("projections/migrations"))
            try await Backbone.withPostgres(backbone.postgres(database: "bench"), logger: logger) {
                try await Backbone.prepare(topic: topic, postgres: $0, migrations: migrations, logger: logger)
            }
        } catch {
            await servers.stop()
            throw error
        }
        return backbone
    }

    /// Starts a private backbone, runs `body` on it, and removes it whatever `body` did.
    static func with<Result: Sendable>(
        root: URL,
        partitions: Int,
        logger: Logger,
        _ body: (BenchBackbone) async throws -> Result
    ) async throws -> Result {
        let backbone = try await start(root: root, partitions: partitions, logger: logger)
        do {
            let result = try await body(backbone)
            await backbone.servers.stop()
            return result
        } catch {
            await backbone.servers.stop()
            throw error
        }
    }

    /// Registers the publisher `id` for `eventTypes` with a new API key, and returns the key.
    func registerPublisher(
        _ id: String,
        eventTypes: [String],
        rateLimit: PublisherRateLimit? = nil
    ) async throws -> String {
        let key = PublisherAPIKey.generate()
        try await Backbone.withPostgres(postgres(), logger: logger) { client in
            try await PublisherStore(client: client, logger: logger).add(
                .apiKey(id: id, apiKey: key, eventTypes: eventTypes, rateLimit: rateLimit)
            )
        }
        return key
    }

    /// A gateway on a free port that publishes to the benchmark's topic, as `configure` adjusts it (no rate
    /// limits, no duplicate memory by default): its services and the port it listens on once they run.
    func gateway(_ configure: (inout GatewayConfiguration) -> Void = { _ in }) throws -> BenchGateway {
        let client = PostgresClient(configuration: postgres(role: .gateway), backgroundLogger: logger)
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.bootstrapServers = topic.bootstrapServers
        configuration.topic = topic.topic
        configuration.publisherEventsPerSecond = 10_000_000
        configuration.publisherBurstEvents = 10_000_000
        configuration.recentEventCapacity = 0
        configure(&configuration)
        let ports = AsyncStream<Int>.makeStream()
        let services = try Gateway.build(
            configuration: configuration,
            pseudonymizer: try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey()),
            stores: .postgres(client, configuration: configuration, ruleSet: try ruleSet, logger: logger),
            onServerRunning: { ports.continuation.yield($0) },
            logger: logger
        )
        return BenchGateway(services: [client] + services, ports: ports.stream)
    }

    /// A wrk script posting `bodies` in turn as NDJSON batches with `key`, written next to the bodies.
    func ingestScript(bodies: [String], key: String) throws -> URL {
        let directory = servers.directory
        for (sequence, body) in bodies.enumerated() {
            try body.write(
                to: directory.appendingPathComponent("batch-\(sequence).ndjson"),
                atomically: true,
                encoding: .utf8
            )
        }
        let script = directory.appendingPathComponent("ingest.lua")
        try """
        local bodies = {}
        for sequence = 0, \(bodies.count - 1) do
          local file = io.open("\(directory.path)/batch-" .. sequence .. ".ndjson", "rb")
          bodies[#bodies + 1] = file:read("*a")
          file:close()
        end
        wrk.method = "POST"
        wrk.headers["Content-Type"] = "application/x-ndjson"
        wrk.headers["Authorization"] = "Bearer \(key)"
        local sent = 0
        request = function()
          sent = sent + 1
          return wrk.format(nil, nil, nil, bodies[sent % #bodies + 1])
        end
        """.write(to: script, atomically: true, encoding: .utf8)
        return script
    }

    /// The benchmark database as the administering role, or as a service's own role (as the services log in).
    func postgres(
        database: String = "bench",
        connections: Int = 8,
        role: ServiceRole? = nil
    ) -> PostgresClient.Configuration {
        servers.postgresConfiguration(database: database, connections: connections, role: role)
    }

    /// Runs `services` around `body`, then shuts them down.
    func withServices<Result: Sendable>(
        _ services: [any Service],
        _ body: @Sendable () async throws -> Result
    ) async throws -> Result {
        try await Backbone.withServices(services, logger: logger, body)
    }
}

/// A benchmark's gateway: its services (run them with ``BenchBackbone/withServices(_:_:)``) and its port.
struct BenchGateway: Sendable {
    let services: [any Service]
    let ports: AsyncStream<Int>

    /// The gateway's ingest URL, once its server runs (call once, inside `withServices`).
    func eventsURL() async -> String {
        var port = 0
        for await bound in ports {
            port = bound
            break
        }
        return "http://127.0.0.1:\(port)/v1/events"
    }
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var inMilliseconds: Double { inSeconds * 1000 }
}

/// `healthcode bench ingest`: events/s through the gateway (HTTP, batches of 500, validation,
/// pseudonymisation, acknowledged produce) against the Kafka producer's own rate for the same
/// events on the same broker.
public struct IngestBenchmark: Sendable {
    /// Settings.
    public struct Options: Sendable {
        /// Events per request. Default 500.
        public var batchSize = 500
        /// Concurrent HTTP connections. Default 8.
        public var connections = 8
        /// Length of each measurement. Default 10 s.
        public var duration: Duration = .seconds(10)
        /// Load before each measurement, on the producer and on the gateway alike. Default 3 s.
        public var warmUp: Duration = .seconds(3)
        /// Partitions of the topic. Default 8.
        public var partitions = 8
        /// Repository root (scripts/infra.sh, projections/migrations).
        public var root: URL

        public init(root: URL) { self.root = root }
    }

    /// The rates measured.
    public struct Result: Sendable {
        public var eventsPerSecond: Double
        public var producerMessagesPerSecond: Double
        public var ratio: Double { producerMessagesPerSecond > 0 ? eventsPerSecond / producerMessagesPerSecond : 0 }
        /// The last line: `bench ingest: N ev/s, producer M msg/s, ratio R`.
        public var line: String {
            "bench ingest: \(Int(eventsPerSecond)) ev/s, producer \(Int(producerMessagesPerSecond)) msg/s, "
                + "ratio \(String(format: "%.2f", ratio))"
        }
    }

    private let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    static func event(_ sequence: Int, _ index: Int) -> String {
        #"{"specversion":"1.0","id":"b-\#(sequence)-\#(index)","source":"urn:hc:publisher:bench","type":"hc.test-result.v1","subject":"BENCH-\#(index)-\#(sequence % 997)","time":"2020-04-03T08:00:00Z","data":{"test":"pcr","result":"negative","lab":"BENCH-LAB"}}"#
    }

    public func run() async throws -> Result {
        try await BenchBackbone.with(root: options.root, partitions: options.partitions, logger: logger) {
            try await measure($0)
        }
    }

    private func measure(_ backbone: BenchBackbone) async throws -> Result {
        let key = try await backbone.registerPublisher("urn:hc:publisher:bench", eventTypes: ["hc.test-result.v1"])
        let producerRate = try await producerBaseline(backbone)
        logger.info("producer baseline", metadata: ["messagesPerSecond": "\(Int(producerRate))"])

        let batchSize = options.batchSize
        let gateway = try backbone.gateway { $0.maximumBatchEvents = batchSize }
        // wrk drives the load from its own process, as in `bench lookup`: a load generator inside this
        // process would take its CPU from the gateway under test.
        let script = try backbone.ingestScript(
            bodies: (0..<8).map { sequence in (0..<batchSize).map { Self.event(sequence, $0) }.joined(separator: "\n")
            },
            key: key
        )
        let connections = options.connections
        let duration = options.duration
        let warmUp = options.warmUp
        let output = try await backbone.withServices(gateway.services) {
            let url = await gateway.eventsURL()
            _ = try await runWrk(script: script, url: url, connections: connections, duration: warmUp)
            return try await runWrk(script: script, url: url, connections: connections, duration: duration)
        }
        guard let requestsPerSecond = LookupBenchmark.number(after: "Requests/sec:", in: output),
            !output.contains("Non-2xx")
        else {
            throw ScratchServerError(detail: "wrk failed or saw refusals: \(output.suffix(800))")
        }
        return Result(
            eventsPerSecond: requestsPerSecond * Double(options.batchSize),
            producerMessagesPerSecond: producerRate
        )
    }

    /// The producer alone: the same events (pseudonymised size) in batches of `batchSize`, from
    /// `connections` concurrent senders, acknowledged, for the same duration.
    private func producerBaseline(_ backbone: BenchBackbone) async throws -> Double {
        var configuration = KafkaProducerConfiguration(bootstrapServers: backbone.topic.bootstrapServers)
        configuration.clientID = "bench-producer"
        // The gateway's producer settings, so that the ratio measures what the gateway adds: with 8
        // closed-loop senders a longer linger lowers both rates, and a baseline at the producer's own
        // 5 ms would measure the gateway's 20 ms linger instead of the gateway.
        configuration.linger = GatewayConfiguration().produceLinger
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let topic = backbone.topic.topic
        let batchSize = options.batchSize
        let connections = options.connections
        let duration = options.duration
        let pseudonymizer = try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey())
        let messages = try (0..<batchSize).map { index in
            var event = try EventDecoder.decode(Array(Self.event(0, index).utf8))
            let subject = pseudonymizer.pseudonym(of: event.subject)
            event.subject = subject
            event.recordedTime = Instant.now()
            return KafkaOutgoingMessage(topic: topic, key: Array(subject.utf8), value: event.jsonBytes())
        }
        let warmUp = options.warmUp
        /// Acknowledged messages from `connections` senders until `deadline`.
        @Sendable func send(until deadline: ContinuousClock.Instant) async -> Int {
            await withTaskGroup(of: Int.self) { group in
                for _ in 0..<connections {
                    group.addTask {
                        var count = 0
                        while ContinuousClock.now < deadline {
                            let results = await producer.sendReportingEach(messages)
                            count += results.count { if case .success = $0 { true } else { false } }
                        }
                        return count
                    }
                }
                return await group.reduce(0, +)
            }
        }
        return try await backbone.withServices([producer]) {
            _ = await send(until: ContinuousClock.now + warmUp)
            let started = ContinuousClock.now
            let sent = await send(until: started + duration)
            return Double(sent) / (ContinuousClock.now - started).inSeconds
        }
    }
}

/// `healthcode bench lookup`: code lookups per second through the query API at a number of
/// connections, against pgbench's point-select ceiling on the same rows with as many clients.
public struct LookupBenchmark: Sendable {
    /// Settings.
    public struct Options: Sendable {
        /// People with a stored state and code. Default 100 000.
        public var people = 100_000
        /// Concurrent connections (HTTP) and clients (pgbench). Default 8.
        public var connections = 8
        /// Length of the API measurement. Default 10 s.
        public var duration: Duration = .seconds(10)
        /// Load on each API instance before it is measured. Default 5 s.
        public var warmUp: Duration = .seconds(5)
        /// The API's ``QueryAPIConfiguration/codeReadsInFlight``. Default: the API's default.
        public var codeReadsInFlight = QueryAPIConfiguration().codeReadsInFlight
        /// The API's ``QueryAPIConfiguration/codeCacheEntries`` in the measured run (a first run keeps
        /// none). Default: the API's default.
        public var codeCacheEntries = QueryAPIConfiguration().codeCacheEntries
        /// Transactions per pgbench client (a count, not a duration: pgbench's timer does not fire
        /// when it is spawned from this process). Default 10 000.
        public var pgbenchTransactions = 10_000
        /// Repository root (scripts/infra.sh, projections/).
        public var root: URL

        public init(root: URL) { self.root = root }
    }

    /// The rates measured.
    public struct Result: Sendable {
        public var requestsPerSecond: Double
        public var p50: Duration
        public var p99: Duration
        public var pgbenchTPS: Double
        /// The same load with no codes kept in memory: every lookup reads PostgreSQL.
        public var uncachedRequestsPerSecond: Double
        public var uncachedP99: Duration
        /// Lookups of the measured run answered from memory and read from PostgreSQL.
        public var cacheHits: Int
        public var cacheMisses: Int
        public var ratio: Double { ratioToPgbench(requestsPerSecond) }
        /// The ratio of the run with no codes kept.
        public var uncachedRatio: Double { ratioToPgbench(uncachedRequestsPerSecond) }
        private func ratioToPgbench(_ rate: Double) -> Double { pgbenchTPS > 0 ? rate / pgbenchTPS : 0 }
        /// `bench lookup uncached: N req/s, p99 X ms, ratio R; cached run: H% of N lookups answered from
        /// memory`, printed first.
        public var cacheLine: String {
            let lookups = cacheHits + cacheMisses
            let hitShare = lookups > 0 ? 100 * Double(cacheHits) / Double(lookups) : 0
            return "bench lookup uncached: \(Int(uncachedRequestsPerSecond)) req/s, "
                + "p99 \(String(format: "%.2f", uncachedP99.inMilliseconds)) ms, "
                + "ratio \(String(format: "%.2f", uncachedRatio)); "
                + "cached run: \(String(format: "%.1f", hitShare))% of \(lookups) lookups answered from memory"
        }
        /// The line before the last: `bench lookup latency: p50 X ms, p99 X ms`.
        public var latencyLine: String {
            "bench lookup latency: p50 \(String(format: "%.2f", p50.inMilliseconds)) ms, "
                + "p99 \(String(format: "%.2f", p99.inMilliseconds)) ms"
        }

        /// The last line: `bench lookup: N req/s, p99 X ms, pgbench M tps, ratio R`.
        public var line: String {
            "bench lookup: \(Int(requestsPerSecond)) req/s, p99 \(String(format: "%.2f", p99.inMilliseconds)) ms, "
                + "pgbench \(Int(pgbenchTPS)) tps, ratio \(String(format: "%.2f", ratio))"
        }
    }

    private let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// The pseudonym of person `index` (32 hex characters, like the gateway's).
    static func pseudonym(_ index: Int) -> String {
        Insecure.md5(index)
    }

    public func run() async throws -> Result {
        try await BenchBackbone.with(root: options.root, partitions: 1, logger: logger) { try await measure($0) }
    }

    private func measure(_ backbone: BenchBackbone) async throws -> Result {
        let rules = try RuleSet.decode(
            [UInt8](Data(contentsOf: options.root.appendingPathComponent("projections/rules/reference-v1.json")))
        )
        // Every person holds the same lived-in history (tests, journeys, declarations, contacts) and the
        // code it yields now, so that a lookup reads and answers a realistic state, not an empty one.
        let now = Instant.now()
        var person = PersonState()
        let workload = ProjectorWorkload(people: 1, eventsPerPerson: 8, anchor: now)
        for event in workload.events(ofPerson: 0, subject: workload.subjects[0]) { person.apply(event) }
        let decision = Policy(ruleSet: rules).evaluate(person, areas: RiskAreaMap(), at: now)
        let state = String(decoding: person.storedJSON(), as: UTF8.self)
        let code = String(decoding: decision.storedJSON(), as: UTF8.self)
        let validUntil = decision.validUntil?.microsecondsSinceEpoch ?? Int64.min
        try await Backbone.withPostgres(backbone.postgres(), logger: logger) { client in
            try await client.query(
                """
                INSERT INTO person_state (subject, state, event_count)
                SELECT md5(i::text), \(state)::json, \(Int32(person.eventCount))
                FROM generate_series(1, \(options.people)) i
                """,
                logger: logger
            )
            try await client.query(
                """
                INSERT INTO rule_set (id, version, hash) VALUES (\(rules.id), \(rules.version), \(rules.contentHash))
                ON CONFLICT (hash) DO NOTHING
                """,
                logger: logger
            )
            try await client.query(
                """
                INSERT INTO person_code (subject, status, valid_until, decision, rule_set, evaluated_at)
                SELECT md5(i::text), \(decision.status.rawValue), hc_instant(\(validUntil)), \(code)::json,
                    (SELECT ref FROM rule_set WHERE hash = \(rules.contentHash)), now()
                FROM generate_series(1, \(options.people)) i
                """,
                logger: logger
            )
            try await client.query("ANALYZE person_state", logger: logger)
            try await client.query("ANALYZE person_code", logger: logger)
        }
        let pgbench = try await pgbenchCeiling(backbone)
        logger.info("pgbench point-select ceiling", metadata: ["tps": "\(Int(pgbench))"])
        // First with no codes kept, every lookup a PostgreSQL read, to show what the cache adds;
        // then as configured, the measurement that counts.
        let uncached = try await lookups(backbone, rules: rules, codeCacheEntries: 0)
        let configured = try await lookups(backbone, rules: rules, codeCacheEntries: options.codeCacheEntries)
        return Result(
            requestsPerSecond: configured.rate,
            p50: configured.p50,
            p99: configured.p99,
            pgbenchTPS: pgbench,
            uncachedRequestsPerSecond: uncached.rate,
            uncachedP99: uncached.p99,
            cacheHits: configured.hits,
            cacheMisses: configured.misses
        )
    }

    /// One wrk run against a fresh query API that keeps at most `codeCacheEntries` codes.
    private func lookups(
        _ backbone: BenchBackbone,
        rules: RuleSet,
        codeCacheEntries: Int
    ) async throws -> (rate: Double, p50: Duration, p99: Duration, hits: Int, misses: Int) {
        let client = PostgresClient(
            configuration: backbone.postgres(connections: options.connections, role: .api),
            backgroundLogger: logger
        )
        var configuration = QueryAPIConfiguration()
        configuration.port = 0
        configuration.signingKeysDirectory = backbone.servers.directory.appendingPathComponent("keys").path
        configuration.codeReadsInFlight = options.codeReadsInFlight
        configuration.codeCacheEntries = codeCacheEntries
        // Every lookup is a checkpoint's audited read; nothing here may be throttled.
        configuration.platformRateLimit = RequestRateLimit(requestsPerSecond: 10_000_000, burst: 10_000_000)
        configuration.personRateLimit = RequestRateLimit(requestsPerSecond: 10_000_000, burst: 10_000_000)
        let readerKey = try await Backbone.withPostgres(backbone.postgres(), logger: logger) { client in
            try await Backbone.registerPlatform(
                id: "urn:hc:platform:bench-lookup",
                kind: .checkpoint,
                rateLimit: nil,
                replacing: true,
                postgres: client,
                logger: logger
            )
        }
        let port = Mutex(0)
        let ready = AsyncStream<Void>.makeStream()
        let api = try await Backbone.queryAPI(
            configuration: configuration,
            postgres: client,
            codeReadPostgres: backbone.postgres(role: .api),
            ruleSet: rules,
            pseudonymizer: try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey()),
            createSigningKey: true,
            metrics: nil,
            onServerRunning: { bound in
                port.withLock { $0 = bound }
                ready.continuation.yield()
            },
            logger: logger
        )
        let connections = options.connections
        let duration = options.duration
        let script = backbone.servers.directory.appendingPathComponent("lookup.lua")
        try wrkScript(readerKey: readerKey).write(to: script, atomically: true, encoding: .utf8)
        let warmUp = options.warmUp
        let cache = api.codeCache
        let (output, before, after) = try await backbone.withServices([client] + api.services) {
            for await _ in ready.stream { break }
            let url = "http://127.0.0.1:\(port.withLock { $0 })"
            // Not measured: as pgbench reads rows PostgreSQL has just cached, the API starts warm.
            _ = try await runWrk(script: script, url: url, connections: connections, duration: warmUp)
            let before = cache.statistics
            let output = try await runWrk(script: script, url: url, connections: connections, duration: duration)
            return (output, before, cache.statistics)
        }
        guard let rate = Self.number(after: "Requests/sec:", in: output),
            let p50 = Self.milliseconds(after: "50%", in: output),
            let p99 = Self.milliseconds(after: "99%", in: output),
            !output.contains("Non-2xx")
        else {
            throw ScratchServerError(detail: "wrk failed or saw errors: \(output.suffix(800))")
        }
        return (rate, p50, p99, after.hits - before.hits, after.misses - before.misses)
    }

    /// A wrk script that asks for the code of a random stored person (from a sample of pseudonyms), as
    /// the checkpoint platform of `readerKey`.
    private func wrkScript(readerKey: String) -> String {
        let sample = (0..<min(options.people, 20_000)).map {
            "\"" + Self.pseudonym(1 + ($0 &* 7919) % options.people) + "\""
        }
        return """
            local people = {\(sample.joined(separator: ","))}
            wrk.headers["Authorization"] = "Bearer \(readerKey)"
            request = function()
              return wrk.format("GET", "/v1/people/" .. people[math.random(#people)] .. "/code")
            end
            """
    }

    static func number(after label: String, in output: String) -> Double? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains(label) }) else { return nil }
        return line.split(separator: " ").compactMap { Double($0) }.first
    }

    /// wrk's latency percentile line, e.g. `99%    4.12ms` (or `us`, `s`).
    static func milliseconds(after label: String, in output: String) -> Duration? {
        guard
            let line = output.split(separator: "\n").first(where: {
                $0.trimmingCharacters(in: .whitespaces).hasPrefix(label)
            }),
            let value = line.split(separator: " ").last
        else { return nil }
        let text = String(value)
        for (suffix, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)) else { return nil }
            return .microseconds(Int64(number * scale * 1000))
        }
        return nil
    }

    /// pgbench with the read a lookup needs (the materialised code of one person by pseudonym), prepared,
    /// `connections` clients; its `tps`.
    private func pgbenchCeiling(_ backbone: BenchBackbone) async throws -> Double {
        let script = backbone.servers.directory.appendingPathComponent("lookup.sql")
        try """
        \\set id random(1, \(options.people))
        SELECT c.decision::text, hc_micros(c.evaluated_at), r.id, r.version, r.hash
        FROM person_code c JOIN rule_set r ON r.ref = c.rule_set WHERE c.subject = md5(:id::text);
        """.write(to: script, atomically: true, encoding: .utf8)
        let output = try await runTool(
            "pgbench",
            [
                "-n", "-M", "prepared", "-h", "127.0.0.1", "-p", "\(backbone.servers.postgresPort)",
                "-U", "healthcode", "-c", "\(options.connections)", "-j", "\(min(options.connections, 4))",
                "-t", "\(options.pgbenchTransactions)", "-f", script.path, "bench",
            ]
        )
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let tps = Double(line.dropFirst("tps = ".count).prefix { $0 == "." || $0.isNumber })
        else {
            throw ScratchServerError(detail: "pgbench failed: \(output.suffix(500))")
        }
        return tps
    }
}

/// wrk with a Lua `script` against `url`: `connections` connections from one thread for `duration`,
/// with latency percentiles; its output.
///
/// One thread: on two cores a second one competes with the service's two event loops, and the
/// scheduler then leaves one wrk thread waiting for 100 ms and more, which its connections record
/// as latency (its rate swung between 0 and 20k/s; with two unseeded threads both also asked for the
/// same requests in lockstep). One thread drives 8 connections at 25k lookups/s.
func runWrk(script: URL, url: String, connections: Int, duration: Duration) async throws -> String {
    try await runTool(
        "wrk",
        [
            "-t", "1", "-c", "\(connections)", "-d", "\(Int(duration.inSeconds))s",
            "--latency", "-s", script.path, url,
        ]
    )
}

/// Runs a tool (pgbench, wrk) found on the PATH; its output, or an error with its tail. Waiting for it
/// blocks a thread of NIO's blocking pool, not one of the few threads that serve the measured services.
func runTool(_ tool: String, _ arguments: [String]) async throws -> String {
    try await NIOThreadPool.singleton.runIfActive { try runToolBlocking(tool, arguments) }
}

private func runToolBlocking(_ tool: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    var environment = ProcessInfo.processInfo.environment
    environment["PGPASSWORD"] = "healthcode"
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ScratchServerError(detail: "\(tool) failed: \(output.suffix(800))")
    }
    return output
}

extension Insecure {
    /// MD5 in hex of `index` as decimal text: the same as PostgreSQL's `md5(i::text)`.
    static func md5(_ index: Int) -> String {
        Insecure.MD5.hash(data: Array(String(index).utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
