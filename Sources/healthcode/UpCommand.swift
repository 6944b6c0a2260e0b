import ArgumentParser
import AsyncHTTPClient
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeDemo
import HealthCodeGateway
import HealthCodeInbound
import HealthCodePostgres
import HealthCodeProjector
import Logging
import PostgresNIO
import ServiceLifecycle

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the whole backbone on the local default and load a demo population.",
        discussion: """
            Expects PostgreSQL and the Kafka broker to be running (scripts/up starts them). Migrates the \
            schema, creates the topic, starts the gateway, a projector and the query API in one process, \
            publishes the demo population through the gateway, prints a summary and serves until Ctrl-C.
            """
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var inbound: InboundOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var api: APIOptions
    @OptionGroup var console: ConsoleOptions
    @OptionGroup var projector: ProjectorOptions
    @OptionGroup var pseudonym: PseudonymOptions
    @OptionGroup var rules: RulesOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var shutdown: ShutdownOptions
    @Option(name: .customLong("demo-people"), help: "Demo population size; 0 starts empty (HC_DEMO_PEOPLE).")
    var demoPeople: Int = Env.int("HC_DEMO_PEOPLE", 100_000)
    @Option(
        name: .customLong("demo-publisher-rate"),
        help: """
            Sustained events/s each demo publisher is registered with; the gateway's --publisher-rate stays \
            the default for every other publisher (HC_DEMO_PUBLISHER_EVENTS_PER_SECOND).
            """
    )
    var demoPublisherRate: Int = Env.int("HC_DEMO_PUBLISHER_EVENTS_PER_SECOND", 1_000_000)
    @Option(
        name: .customLong("demo-publisher-burst"),
        help: "Burst in events each demo publisher is registered with (HC_DEMO_PUBLISHER_BURST_EVENTS)."
    )
    var demoPublisherBurst: Int = Env.int("HC_DEMO_PUBLISHER_BURST_EVENTS", 1_000_000)
    @Flag(
        name: .customLong("exit-after-summary"),
        help: "Stop every service and exit 0 once the demo's summary is printed, instead of serving."
    )
    var exitAfterSummary = false

    func validate() throws {
        guard demoPeople >= 0 else { throw ValidationError("--demo-people must be 0 or more") }
        guard (1...Int(Int32.max)).contains(demoPublisherRate), (1...Int(Int32.max)).contains(demoPublisherBurst)
        else {
            throw ValidationError("--demo-publisher-rate and --demo-publisher-burst must be between 1 and \(Int32.max)")
        }
    }

    func run() async throws {
        let metrics = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.up")
        let topic = kafka.configuration
        let pseudonymizer = try pseudonym.pseudonymizer(createIfMissing: true)
        let (ruleSetFile, ruleSet) = try rules.ruleSetFile()
        let migrations = try SchemaMigrator.migrations(in: try migrationsDirectory())
        let pgConfiguration = postgres.configuration.clientConfiguration()

        ConsoleOutput.line("up: preparing \(postgres.configuration) and topic '\(topic.topic)' on \(kafka.bootstrap)")
        let (demoCredentials, platformKeys, analystKey) = try await Backbone.withPostgres(
            pgConfiguration,
            logger: logger
        ) {
            client in
            try await Backbone.prepare(topic: topic, postgres: client, migrations: migrations, logger: logger)
            try await Self.activateFirstRuleSet(ruleSetFile, ruleSet: ruleSet, postgres: client, logger: logger)
            let publishers = try await Backbone.enrollPublishers(
                DemoPopulation.Publisher.all.map { ($0.id, [$0.eventType]) },
                rateLimit: PublisherRateLimit(eventsPerSecond: demoPublisherRate, burstEvents: demoPublisherBurst),
                postgres: client,
                logger: logger
            )
            // A local residents' app and a local checkpoint, registered again at every start (new keys,
            // written for the local user only).
            var platforms: [ClientPlatformRecord.Kind: String] = [:]
            for kind in ClientPlatformRecord.Kind.allCases {
                platforms[kind] = try await Backbone.registerPlatform(
                    id: "urn:hc:platform:local-demo-\(kind.rawValue)",
                    kind: kind,
                    rateLimit: RequestRateLimit(requestsPerSecond: 1000, burst: 1000),
                    replacing: true,
                    postgres: client,
                    logger: logger
                )
            }
            // A local analyst for the web console, who may approve held changes (new key at every start).
            let analystKey = AnalystAccess.generateKey()
            try await AnalystStore(client: client, logger: logger).replace(
                id: "local-demo-analyst",
                apiKeySHA256: AnalystAccess.hash(analystKey),
                mayApprove: true
            )
            return (publishers, platforms, analystKey)
        }
        var keyFiles: [ClientPlatformRecord.Kind: String] = [:]
        for (kind, key) in platformKeys {
            keyFiles[kind] = try Self.writeSecret(key, to: ".local/demo-\(kind.rawValue)-platform.key")
        }
        let analystKeyFile = try Self.writeSecret(analystKey, to: ".local/demo-analyst.key")

        // Each service logs in as its own role, with only the grants it needs (migration 0013).
        let projectorClient = PostgresClient(
            configuration: postgres.configuration(for: .projector).clientConfiguration(),
            backgroundLogger: logger
        )
        let gatewayClient = PostgresClient(
            configuration: postgres.configuration(for: .gateway).clientConfiguration(),
            backgroundLogger: logger
        )
        let apiPostgres = postgres.configuration(for: .api).clientConfiguration()
        let apiClient = PostgresClient(configuration: apiPostgres, backgroundLogger: logger)
        let started = StartupSignal(components: 2)
        let projectorConfiguration = {
            var configuration = projector.configuration(topic: topic)
            // One process holds every partition: it reads them directly, with no group join to wait for
            // (a member that left mid-join can wedge a group on the local broker for good).
            configuration.assignment = .direct
            return configuration
        }()
        let storage = ProjectionStore(client: projectorClient, logger: logger)
        let projection = try Projector.build(
            configuration: projectorConfiguration,
            storage: storage,
            ruleSet: ruleSet,
            logger: logger
        )
        let gatewayConfiguration = gateway.configuration(topic: topic, timeouts: http.timeouts)
        // The gateway and the ingest processor apply the same rules with the same reads.
        let gatewayStores = GatewayStores.postgres(
            gatewayClient,
            configuration: gatewayConfiguration,
            ruleSet: ruleSet,
            logger: logger
        )
        let gatewayServices = try Gateway.build(
            configuration: gatewayConfiguration,
            pseudonymizer: pseudonymizer,
            stores: gatewayStores,
            metrics: metrics,
            onServerRunning: { _ in started.ready() },
            logger: logger
        )
        // The ingest processor reads the inbound topics of publishers registered with --kafka; with none, it
        // only looks again every --inbound-refresh-seconds.
        let inboundServices = try Inbound.build(
            configuration: inbound.configuration(topic: topic),
            gateway: gatewayConfiguration,
            pseudonymizer: pseudonymizer,
            stores: gatewayStores,
            checkpoints: InboundCheckpointStore(client: gatewayClient, logger: logger),
            logger: logger
        )
        let apiServices = try await Backbone.queryAPI(
            configuration: api.configuration(timeouts: http.timeouts),
            postgres: apiClient,
            codeReadPostgres: apiPostgres,
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            createSigningKey: true,
            metrics: metrics,
            console: .init(configuration: console.configuration, ruleSetFile: ruleSetFile),
            onServerRunning: { _ in started.ready() },
            logger: logger
        )
        var demoConfiguration = DemoLoad.Configuration(
            gatewayURL: "http://\(gateway.host):\(gateway.port)",
            apiURL: "http://\(api.host):\(api.port)"
        )
        demoConfiguration.people = demoPeople
        demoConfiguration.credentials = demoCredentials
        demoConfiguration.exitAfterSummary = exitAfterSummary
        demoConfiguration.readerKey = platformKeys[.checkpoint]
        demoConfiguration.readerKeyFile = keyFiles[.checkpoint]
        demoConfiguration.residentKeyFile = keyFiles[.resident]
        demoConfiguration.analystKeyFile = console.disabled ? nil : analystKeyFile
        demoConfiguration.batchSize = min(demoConfiguration.batchSize, gateway.maximumBatchEvents)
        let consumer = projection.consumer
        let demo = DemoLoad(
            configuration: demoConfiguration,
            pseudonymizer: pseudonymizer,
            client: HTTPClient.shared,
            ready: { await started.wait() },
            caughtUp: {
                try await CommandFailure.describingSafely {
                    try await Projector.caughtUp(
                        topic: topic.topic,
                        partitions: topic.partitions,
                        group: projectorConfiguration.group,
                        consumer: consumer,
                        storage: storage
                    )
                }
            },
            statusCounts: {
                try await CommandFailure.describingSafely {
                    try await CodeStore(client: apiClient, logger: logger).statusCounts()
                }
            },
            now: Instant.now,
            logger: logger
        )
        let operations = Projector.operations(
            progress: projection.progress,
            configuration: projectorConfiguration,
            host: projector.metricsHost,
            port: projector.metricsPort,
            stallAfter: .seconds(projector.stallAfterSeconds),
            metrics: metrics,
            logger: logger
        )
        let services: [any Service] =
            [projectorClient, gatewayClient, apiClient] + projection.services + [operations] + gatewayServices
            + inboundServices + apiServices.services
        // The demo ending (after its summary with --exit-after-summary, or failing) stops the others
        // gracefully: requests finish, connections close, nothing is cancelled mid-write.
        let demoService = ServiceGroupConfiguration.ServiceConfiguration(
            service: demo,
            successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup
        )
        try await runServiceGroup(
            services.map { .init(service: $0) } + [demoService],
            shutdown: shutdown,
            logger: logger
        )
    }

    /// Writes a local secret readable by its owner only; returns the path.
    static func writeSecret(_ secret: String, to path: String) throws -> String {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((secret + "\n").utf8).write(to: url, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return path
    }
}

extension UpCommand {
    /// Rule sets decide once activated (`healthcode rules activate`). A database that never had one gets the
    /// configured file activated, from the beginning of time, by "healthcode up"; otherwise the version in
    /// force stays, and a different file is named on the console, never switched to silently.
    static func activateFirstRuleSet(
        _ file: [UInt8],
        ruleSet: RuleSet,
        postgres: PostgresClient,
        logger: Logger
    ) async throws {
        let store = RuleSetVersionStore(client: postgres, logger: logger)
        guard try await !store.activations().isEmpty else {
            let activation = try await store.activate(
                body: file,
                effectiveFrom: Instant(microsecondsSinceEpoch: 0),
                activatedBy: "healthcode up"
            )
            ConsoleOutput.line(
                "up: rule set \(activation.ruleSet.id) \(activation.ruleSet.version) activated (the first; "
                    + "`healthcode rules list` shows the versions)"
            )
            return
        }
        if let inForce = try await store.activation(at: Instant.now()), inForce.ruleSet.hash != ruleSet.contentHash {
            ConsoleOutput.line(
                "up: the rule set in force is \(inForce.ruleSet.id) \(inForce.ruleSet.version) (activated by "
                    + "\(inForce.activatedBy)); the --rules file (\(ruleSet.id) \(ruleSet.version)) is not used: "
                    + "activate it with `healthcode rules activate FILE --by NAME`"
            )
        }
    }
}
