import AsyncHTTPClient
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeConsole
import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import HealthCodePostgres
import HealthCodeProjector
import HealthCodeTestSupport
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// An isolated backbone for one test: its own PostgreSQL database (migrated), its own topic and
/// consumer group on the local broker, and a fixed pseudonym key.
struct TestBackbone: Sendable {
    let postgresPort: Int
    let database: String
    let topic: EventTopicConfiguration
    let group: String
    let pseudonymizer: Pseudonymizer
    var ruleSet: RuleSet

    static let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

    static func make(
        partitions: Int = 4,
        postgresPort: Int = LocalInfrastructure.postgresPort,
        kafkaBootstrapServers: String = LocalInfrastructure.kafkaBootstrapServers
    ) async throws -> TestBackbone {
        let database = LocalInfrastructure.uniqueName("hc_test")
        let logger = testLogger()
        let admin = clientConfiguration(port: postgresPort, database: "healthcode", serviceLimits: false)
        try await Backbone.withPostgres(admin, logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"), logger: logger)
        }
        var topic = EventTopicConfiguration()
        topic.bootstrapServers = [kafkaBootstrapServers]
        topic.topic = LocalInfrastructure.uniqueName("hc_events")
        topic.partitions = partitions
        let migrations = try SchemaMigrator.migrations(
            in: LocalInfrastructure.repositoryRoot.appendingPathComponent("projections/migrations")
        )
        try await Backbone.withPostgres(
            clientConfiguration(port: postgresPort, database: database, serviceLimits: false),
            logger: logger
        ) {
            client in
            try await Backbone.prepare(topic: topic, postgres: client, migrations: migrations, logger: logger)
            let store = PublisherStore(client: client, logger: logger)
            for source in testPublishers {
                try await store.add(
                    .apiKey(id: source, apiKey: apiKey(of: source), eventTypes: EventType.allCases.map(\.rawValue))
                )
            }
            let platforms = ClientPlatformStore(client: client, logger: logger)
            for (id, kind, key) in [
                (checkpointPlatform, ClientPlatformRecord.Kind.checkpoint, checkpointKey),
                (residentPlatform, .resident, residentKey),
            ] {
                try await platforms.add(
                    ClientPlatformRecord(
                        id: id,
                        kind: kind,
                        apiKeySHA256: ClientPlatformRegistry.hash(key),
                        rateLimit: RequestRateLimit(requestsPerSecond: 100_000, burst: 100_000)
                    )
                )
            }
        }
        let rules = try Data(
            contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent("projections/rules/reference-v1.json")
        )
        return TestBackbone(
            postgresPort: postgresPort,
            database: database,
            topic: topic,
            group: LocalInfrastructure.uniqueName("hc_projector"),
            pseudonymizer: try Pseudonymizer(hexKey: key),
            ruleSet: try RuleSet.decode([UInt8](rules))
        )
    }

    /// The publishers the tests publish as, registered in every test database.
    static let testPublishers = [
        "urn:hc:publisher:test-bureau", "urn:hc:publisher:test-cdc", "urn:hc:publisher:test-transport",
        "urn:hc:publisher:test-residents", "urn:hc:publisher:test-state-council",
    ]

    /// The checkpoint platform every test backbone registers, and its key (test databases only).
    static let checkpointPlatform = "urn:hc:platform:test-checkpoint"
    static let checkpointKey = ClientPlatformRegistry.keyPrefix + PublisherAPIKey.hash("test-checkpoint")
    /// The residents' platform every test backbone registers, and its key (test databases only).
    static let residentPlatform = "urn:hc:platform:test-resident"
    static let residentKey = ClientPlatformRegistry.keyPrefix + PublisherAPIKey.hash("test-resident")

    /// The `Authorization` header a test sends to `url` of the API: the residents' platform for lookups,
    /// the checkpoint platform for code reads, none otherwise.
    static func platformAuthorization(for url: String) -> (String, String)? {
        if url.contains("/v1/code-lookups") { return ("Authorization", "Bearer \(residentKey)") }
        if url.contains("/v1/people/"), url.hasSuffix("/code") || url.contains("/code?") {
            return ("Authorization", "Bearer \(checkpointKey)")
        }
        return nil
    }

    /// The API key of a test publisher (derived from its id; test databases only).
    static func apiKey(of source: String) -> String {
        PublisherAPIKey.prefix + PublisherAPIKey.hash("test-publisher:" + source)
    }

    /// The services' own client settings (generic plans, kept-open pool), on the test's database. With
    /// `serviceLimits`, a service's statement and lock timeouts, below the tests' transaction deadline
    /// (10 s) as the defaults are below the services' (30 s); without, none: for the test's own reads (a
    /// verification streams the whole archive in one statement).
    static func clientConfiguration(
        port: Int,
        database: String,
        serviceLimits: Bool = true,
        role: ServiceRole? = nil
    ) -> PostgresClient.Configuration {
        var configuration = PostgresConfiguration()
        configuration.host = LocalInfrastructure.postgresHost
        configuration.port = port
        configuration.username = LocalInfrastructure.postgresUser
        configuration.password = LocalInfrastructure.postgresPassword
        configuration.database = database
        configuration.maximumConnections = 4
        configuration.statementTimeout = serviceLimits ? .seconds(8) : nil
        configuration.lockTimeout = serviceLimits ? .seconds(4) : nil
        if let role { configuration = configuration.logged(in: role, password: configuration.password) }
        return configuration.clientConfiguration()
    }

    /// The client configuration of this test's database, for the services under test: the projector's
    /// role unless another is named, so that every test runs a service with only its own grants.
    func clientConfiguration(for role: ServiceRole) -> PostgresClient.Configuration {
        Self.clientConfiguration(port: postgresPort, database: database, role: role)
    }

    /// The projector's client configuration of this test's database.
    var clientConfiguration: PostgresClient.Configuration { clientConfiguration(for: .projector) }

    var projectorConfiguration: ProjectorConfiguration {
        var configuration = ProjectorConfiguration()
        configuration.bootstrapServers = topic.bootstrapServers
        configuration.topic = topic.topic
        configuration.group = group
        configuration.batchSize = 200
        configuration.transactionTimeout = .seconds(10)
        return configuration
    }

    /// Runs `body` with a PostgreSQL client on this test's database, without the services' statement and
    /// lock timeouts.
    func withDatabase<Result: Sendable>(_ body: (PostgresClient) async throws -> Result) async throws -> Result {
        try await Backbone.withPostgres(
            Self.clientConfiguration(port: postgresPort, database: database, serviceLimits: false),
            logger: testLogger(),
            body
        )
    }

    /// The gateway (its configuration adjusted by `configureGateway`), projector and API of this backbone;
    /// `body` gets their base URLs.
    func withRunningBackbone<Result: Sendable>(
        configureGateway: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ gatewayURL: String, _ apiURL: String, _ probe: Probe) async throws -> Result
    ) async throws -> Result {
        let logger = testLogger()
        // Each service with its own role and grants, as `healthcode up` runs them.
        let client = PostgresClient(configuration: clientConfiguration(for: .projector), backgroundLogger: logger)
        let gatewayClient = PostgresClient(configuration: clientConfiguration(for: .gateway), backgroundLogger: logger)
        let apiClient = PostgresClient(configuration: clientConfiguration(for: .api), backgroundLogger: logger)
        // The tests' own reads and interventions (ending a session, changing a row by hand).
        let administrator = PostgresClient(
            configuration: Self.clientConfiguration(port: postgresPort, database: database, serviceLimits: false),
            backgroundLogger: logger
        )
        let ports = PortBox()
        let started = StartupSignal(components: 2)
        var gatewayConfiguration = GatewayConfiguration()
        gatewayConfiguration.port = 0
        gatewayConfiguration.bootstrapServers = topic.bootstrapServers
        gatewayConfiguration.topic = topic.topic
        configureGateway(&gatewayConfiguration)
        var apiConfiguration = QueryAPIConfiguration()
        apiConfiguration.port = 0
        // Tests poll one person's code many times a second; the per-person limit has its own tests.
        apiConfiguration.personRateLimit = RequestRateLimit(requestsPerSecond: 100_000, burst: 100_000)
        apiConfiguration.holderBindingIterations = 1000
        apiConfiguration.minimumHolderBindingIterations = 1000
        let gateway = try Gateway.build(
            configuration: gatewayConfiguration,
            pseudonymizer: pseudonymizer,
            stores: .postgres(gatewayClient, configuration: gatewayConfiguration, ruleSet: ruleSet, logger: logger),
            onServerRunning: { port in
                ports.gateway = port
                started.ready()
            },
            logger: logger
        )
        let projector = try Projector.build(
            configuration: projectorConfiguration,
            storage: ProjectionStore(client: client, logger: logger),
            ruleSet: ruleSet,
            logger: logger
        )
        apiConfiguration.signingKeysDirectory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("hc_keys")).path
        let api = try await Backbone.queryAPI(
            configuration: apiConfiguration,
            postgres: apiClient,
            codeReadPostgres: clientConfiguration(for: .api),
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            createSigningKey: true,
            metrics: nil,
            console: .init(
                configuration: ConsoleConfiguration(),
                ruleSetFile: try ReferenceRules.file()
            ),
            onServerRunning: { port in
                ports.api = port
                started.ready()
            },
            logger: logger
        )
        let probe = Probe(
            backbone: self,
            consumer: projector.consumer,
            client: administrator,
            codeCache: api.codeCache,
            progress: projector.progress
        )
        return try await withServices(
            [client, gatewayClient, apiClient, administrator] + projector.services + gateway + api.services
        ) {
            await started.wait()
            return try await body("http://127.0.0.1:\(ports.gateway)", "http://127.0.0.1:\(ports.api)", probe)
        }
    }

    /// Read-only checks on a running backbone.
    struct Probe: Sendable {
        let backbone: TestBackbone
        let consumer: KafkaConsumer
        let client: PostgresClient
        /// The API's kept codes.
        let codeCache: CodeCache
        /// What the projector reports on `/health`.
        let progress: ProjectorProgress

        /// Waits until the projector has applied everything on the topic.
        func waitUntilCaughtUp(timeout: Duration = .seconds(60)) async throws {
            let deadline = ContinuousClock.now + timeout
            while true {
                let caughtUp = try await Projector.caughtUp(
                    topic: backbone.topic.topic,
                    partitions: backbone.topic.partitions,
                    group: backbone.group,
                    consumer: consumer,
                    storage: ProjectionStore(client: client, logger: testLogger())
                )
                if caughtUp { return }
                guard ContinuousClock.now < deadline else {
                    throw TestFailure("projector did not catch up in \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}

/// A failure raised by the harness.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The ports the servers bound (they listen on port 0: any free port).
final class PortBox: Sendable {
    private let ports = Mutex<(gateway: Int, api: Int)>((0, 0))
    var gateway: Int {
        get { ports.withLock { $0.gateway } }
        set { ports.withLock { $0.gateway = newValue } }
    }
    var api: Int {
        get { ports.withLock { $0.api } }
        set { ports.withLock { $0.api = newValue } }
    }
}

extension TestBackbone {
    /// Runs a projector alone until `done` holds, then stops it: gracefully, or by cancelling its
    /// services' task (as a crash would: in-flight transactions roll back).
    ///
    /// The PostgreSQL client runs around the projector and ends after it: cancelling a PostgresNIO
    /// client while one of its connections is committing can leave that commit waiting for good,
    /// and the abrupt stop tested here is the projector's, not the database client's.
    func runProjector(
        until done: @escaping @Sendable (PostgresClient) async throws -> Bool,
        gracefully: Bool,
        timeout: Duration = .seconds(90)
    ) async throws {
        let logger = testLogger()
        let client = PostgresClient(
            configuration: clientConfiguration,
            backgroundLogger: logger
        )
        let projector = try Projector.build(
            configuration: projectorConfiguration,
            storage: ProjectionStore(client: client, logger: logger),
            ruleSet: ruleSet,
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: projector.services.map { .init(service: $0) },
                gracefulShutdownSignals: [],
                logger: logger
            )
        )
        try await withServices([client]) {
            try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask {
                    try await group.run()
                    return false
                }
                tasks.addTask {
                    let deadline = ContinuousClock.now + timeout
                    while try await !done(client) {
                        guard ContinuousClock.now < deadline else {
                            throw TestFailure("projector did not reach its goal in \(timeout)")
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    return true
                }
                // Whichever ends first: the goal reached, or the projector's group ending (or failing) early.
                guard try await tasks.next() == true else {
                    tasks.cancelAll()
                    throw TestFailure("the projector stopped before reaching its goal")
                }
                if gracefully {
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                } else {
                    tasks.cancelAll()
                    try? await tasks.waitForAll()
                }
            }
        }
    }
}

/// The `healthcode` binary built next to the test bundle.
var healthcodeExecutable: URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("healthcode")
}

extension TestBackbone {
    /// The settings of a `healthcode projector` process for this backbone.
    var projectorSettings: [String: String] {
        [
            "HC_KAFKA_BOOTSTRAP": topic.bootstrapServers.joined(separator: ","),
            "HC_TOPIC": topic.topic,
            "HC_PROJECTOR_GROUP": group,
            "HC_PROJECTOR_BATCH_SIZE": "500",
            "HC_PG_HOST": LocalInfrastructure.postgresHost,
            "HC_PG_PORT": "\(postgresPort)",
            "HC_PG_DATABASE": database,
            "HC_RULES": LocalInfrastructure.repositoryRoot.appendingPathComponent("projections/rules/reference-v1.json")
                .path,
        ]
    }
}
