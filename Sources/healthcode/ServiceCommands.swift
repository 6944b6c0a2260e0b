import ArgumentParser
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeGateway
import HealthCodePostgres
import HealthCodeProjector
import Logging
import PostgresNIO
import ServiceLifecycle

/// Runs `services` in one `ServiceGroup` that shuts down gracefully on SIGINT and SIGTERM.
func runServiceGroup(
    _ services: [ServiceGroupConfiguration.ServiceConfiguration],
    shutdown: ShutdownOptions,
    logger: Logger
) async throws {
    var configuration = ServiceGroupConfiguration(
        services: services,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
    // Past the grace period, shutdown turns into cancellation: work still in hand is abandoned (each
    // service says what), which is safe because nothing commits without its position or acknowledgement.
    configuration.maximumGracefulShutdownDuration = shutdown.grace
    try await ServiceGroup(configuration: configuration).run()
}

struct SetupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Apply the schema migrations and create the event topic (both idempotent)."
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.setup")
        let migrations = try SchemaMigrator.migrations(in: try migrationsDirectory())
        try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
            try await Backbone.prepare(
                topic: kafka.configuration,
                postgres: client,
                migrations: migrations,
                logger: logger
            )
        }
        print("schema migrated; topic '\(kafka.topic)' ready")
    }
}

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the ingestion gateway: POST /v1/events → validate, pseudonymise → Kafka."
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var rules: RulesOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var pseudonym: PseudonymOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var shutdown: ShutdownOptions

    func run() async throws {
        let metrics = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.gateway")
        let client = PostgresClient(
            configuration: postgres.configuration(for: .gateway).clientConfiguration(),
            backgroundLogger: logger
        )
        let configuration = gateway.configuration(topic: kafka.configuration, timeouts: http.timeouts)
        let services = try Gateway.build(
            configuration: configuration,
            pseudonymizer: try pseudonym.pseudonymizer(),
            stores: .postgres(client, configuration: configuration, ruleSet: try rules.ruleSet(), logger: logger),
            metrics: metrics,
            logger: logger
        )
        try await runServiceGroup(([client] + services).map { .init(service: $0) }, shutdown: shutdown, logger: logger)
    }
}

struct ProjectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projector",
        abstract: "Run a projector: Kafka → per-person state and codes in PostgreSQL, exactly once."
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var projector: ProjectorOptions
    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var rules: RulesOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var shutdown: ShutdownOptions

    func run() async throws {
        let metrics = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.projector")
        let client = PostgresClient(
            configuration: postgres.configuration(for: .projector).clientConfiguration(),
            backgroundLogger: logger
        )
        let configuration = projector.configuration(topic: kafka.configuration)
        let projector = try Projector.build(
            configuration: configuration,
            storage: ProjectionStore(client: client, logger: logger),
            ruleSet: try rules.ruleSet(),
            logger: logger
        )
        let operational = Projector.operations(
            progress: projector.progress,
            configuration: configuration,
            host: self.projector.metricsHost,
            port: self.projector.metricsPort,
            stallAfter: .seconds(self.projector.stallAfterSeconds),
            metrics: metrics,
            logger: logger
        )
        try await runServiceGroup(
            ([client] + projector.services + [operational]).map { .init(service: $0) },
            shutdown: shutdown,
            logger: logger
        )
    }
}

struct APICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Run the query API (GET /v1/people/{pseudonym}/code, …) and the web console under /console."
    )

    @OptionGroup var api: APIOptions
    @OptionGroup var console: ConsoleOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var pseudonym: PseudonymOptions
    @OptionGroup var rules: RulesOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var shutdown: ShutdownOptions

    func run() async throws {
        let metrics = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.api")
        let clientConfiguration = postgres.configuration(for: .api).clientConfiguration()
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        let rules = try self.rules.ruleSetFile()
        let queryAPI = try await Backbone.queryAPI(
            configuration: api.configuration(timeouts: http.timeouts),
            postgres: client,
            codeReadPostgres: clientConfiguration,
            ruleSet: rules.ruleSet,
            pseudonymizer: try pseudonym.pseudonymizer(),
            metrics: metrics,
            console: .init(configuration: console.configuration, ruleSetFile: rules.bytes),
            logger: logger
        )
        try await runServiceGroup(
            ([client] + queryAPI.services).map { .init(service: $0) },
            shutdown: shutdown,
            logger: logger
        )
    }
}
