import ArgumentParser
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodeGateway
import HealthCodeInbound
import HealthCodePostgres
import Logging
import PostgresNIO

/// The ingest processor's settings from flags and environment (``IngestProcessorConfiguration``).
struct InboundOptions: ParsableArguments {
    @Option(
        name: .customLong("inbound-partitions"),
        help: "Partitions of each inbound and rejects topic it creates (HC_INBOUND_PARTITIONS)."
    )
    var partitions: Int = Env.int("HC_INBOUND_PARTITIONS", IngestProcessorConfiguration().inboundPartitions)
    @Option(
        name: .customLong("inbound-retention-hours"),
        help: "Retention of the inbound and rejects topics it creates, in hours (HC_INBOUND_RETENTION_HOURS)."
    )
    var retentionHours: Int = Env.int(
        "HC_INBOUND_RETENTION_HOURS",
        Int(IngestProcessorConfiguration().inboundRetention.components.seconds / 3600)
    )
    @Option(
        name: .customLong("inbound-refresh-seconds"),
        help: "How often the publishers with inbound topics are read again (HC_INBOUND_REFRESH_SECONDS)."
    )
    var refreshSeconds: Int = Env.int(
        "HC_INBOUND_REFRESH_SECONDS",
        Int(IngestProcessorConfiguration().refreshInterval.components.seconds)
    )
    @Option(
        name: .customLong("inbound-batch"),
        help: "Most messages of one inbound partition processed at once (HC_INBOUND_BATCH)."
    )
    var batch: Int = Env.int("HC_INBOUND_BATCH", IngestProcessorConfiguration().batchMessages)
    @Option(
        name: .customLong("inbound-delivery"),
        help: """
            How outputs and positions agree (HC_INBOUND_DELIVERY): checkpointed (any broker; positions in \
            PostgreSQL) or transactional (Apache Kafka transactions; see docs/INBOUND.md).
            """
    )
    var delivery: String = Env.string("HC_INBOUND_DELIVERY", "checkpointed")
    @Option(
        name: .customLong("inbound-transactional-id"),
        help: "With --inbound-delivery transactional: this processor's transactional.id (HC_INBOUND_TRANSACTIONAL_ID)."
    )
    var transactionalID: String = Env.string("HC_INBOUND_TRANSACTIONAL_ID", "healthcode-ingest-processor")
    @Option(
        name: .customLong("inbound-group"),
        help: "With --inbound-delivery transactional: the group its input offsets are committed for (HC_INBOUND_GROUP)."
    )
    var group: String = Env.string("HC_INBOUND_GROUP", "healthcode-ingest-processor")
    @Option(
        name: .customLong("inbound-metrics-host"),
        help: "Where `ingest-processor` serves /health and /metrics (HC_INBOUND_METRICS_HOST)."
    )
    var metricsHost: String = Env.string("HC_INBOUND_METRICS_HOST", "127.0.0.1")
    @Option(
        name: .customLong("inbound-metrics-port"),
        help: "Port of /health and /metrics of `ingest-processor` (HC_INBOUND_METRICS_PORT)."
    )
    var metricsPort: Int = Env.int("HC_INBOUND_METRICS_PORT", 9191)

    func validate() throws {
        guard ["checkpointed", "transactional"].contains(delivery) else {
            throw ValidationError("--inbound-delivery must be checkpointed or transactional, not '\(delivery)'")
        }
        guard (1...65_535).contains(metricsPort) else {
            throw ValidationError("--inbound-metrics-port must be between 1 and 65535")
        }
        guard !transactionalID.isEmpty, !group.isEmpty else {
            throw ValidationError("--inbound-transactional-id and --inbound-group must not be empty")
        }
        do { try configuration(topic: EventTopicConfiguration()).validate() } catch {
            throw error.flagError(Self.flags)
        }
    }

    static let flags = [
        "inboundPartitions": "--inbound-partitions", "inboundRetention": "--inbound-retention-hours",
        "refreshInterval": "--inbound-refresh-seconds", "batchMessages": "--inbound-batch",
    ]

    func configuration(topic: EventTopicConfiguration) -> IngestProcessorConfiguration {
        var configuration = IngestProcessorConfiguration()
        configuration.bootstrapServers = topic.bootstrapServers
        configuration.eventsTopic = topic.topic
        configuration.inboundPartitions = partitions
        configuration.inboundRetention = .seconds(Int64(retentionHours) * 3600)
        configuration.refreshInterval = .seconds(Int64(refreshSeconds))
        configuration.batchMessages = batch
        configuration.delivery =
            delivery == "transactional" ? .transactional(transactionalID: transactionalID, group: group) : .checkpointed
        return configuration
    }
}

struct IngestProcessorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest-processor",
        abstract:
            "Run the ingest processor: publishers' inbound Kafka topics → the gateway's rules → the events topic.",
        discussion: """
            Reads the inbound topic of every publisher registered with --kafka (healthcode publishers add), applies \
            exactly what the HTTP gateway applies (contract, the publisher's source and types, pseudonym, \
            recordedtime, duplicates) and writes each valid event to the events topic and everything else, with \
            its reasons, to the publisher's rejects topic: each inbound message once (docs/INBOUND.md). Run one \
            per deployment.
            """
    )

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var inbound: InboundOptions
    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var rules: RulesOptions
    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var pseudonym: PseudonymOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var shutdown: ShutdownOptions

    func run() async throws {
        let metrics = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.ingest-processor")
        let progress = InboundProgress()
        let client = PostgresClient(
            configuration: postgres.configuration(for: .gateway).clientConfiguration(),
            backgroundLogger: logger
        )
        let gatewayConfiguration = gateway.configuration(topic: kafka.configuration)
        let services = try Inbound.build(
            configuration: inbound.configuration(topic: kafka.configuration),
            gateway: gatewayConfiguration,
            pseudonymizer: try pseudonym.pseudonymizer(),
            stores: .postgres(
                client,
                configuration: gatewayConfiguration,
                ruleSet: try rules.ruleSet(),
                logger: logger
            ),
            checkpoints: InboundCheckpointStore(client: client, logger: logger),
            progress: progress,
            logger: logger
        )
        let operations = Inbound.operations(
            progress: progress,
            host: inbound.metricsHost,
            port: inbound.metricsPort,
            metrics: metrics,
            logger: logger
        )
        try await runServiceGroup(
            ([client] + services + [operations]).map { .init(service: $0) },
            shutdown: shutdown,
            logger: logger
        )
    }
}

/// `healthcode bench inbound`: the ingest processor against a plain producer writing the same raw events.
struct BenchInbound: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbound",
        abstract: "Benchmark the ingest processor (inbound topic → events topic) against the raw producer rate."
    )

    @Option(help: "Raw events the publisher produces (Tansu keeps ~400 B per message until it stops).")
    var messages = 200_000

    @Option(help: "Partitions of the inbound topic.")
    var inboundPartitions = 4

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.inbound")
        logger.logLevel = .info
        guard
            let root = ProjectFiles.locate("scripts/infra.sh")?.deletingLastPathComponent().deletingLastPathComponent()
        else {
            throw ValidationError("run from the repository: scripts/infra.sh not found")
        }
        var options = InboundBenchmark.Options(root: root)
        options.messages = messages
        options.inboundPartitions = inboundPartitions
        let result = try await InboundBenchmark(options: options, logger: logger).run()
        print(result.summary)
    }
}
