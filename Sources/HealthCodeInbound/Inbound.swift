import HealthCodeCore
import HealthCodeGateway
import HealthCodeHTTP
import HealthCodeKafka
import Hummingbird
import Logging
import ServiceLifecycle

/// The ingest processor's one entry point: its services assembled from its configuration, the gateway's rules
/// (`gateway`: clock skew, duplicate memory, designation oversight) and what it needs (``GatewayStores``, the
/// same as the gateway's, and ``InboundCheckpoints``). Nothing starts until the services run in a
/// `ServiceGroup`, after whatever serves the stores.
public enum Inbound {
    /// The Kafka producer and the processor, in the order they must start.
    public static func build(
        configuration: IngestProcessorConfiguration,
        gateway: GatewayConfiguration,
        pseudonymizer: Pseudonymizer,
        stores: GatewayStores,
        checkpoints: any InboundCheckpoints,
        progress: InboundProgress = InboundProgress(),
        logger: Logger
    ) throws -> [any Service] {
        try configuration.validate()
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.bootstrapServers)
        producerConfiguration.clientID = "healthcode-ingest-processor"
        producerConfiguration.deliveryTimeout = configuration.deliveryTimeout
        producerConfiguration.requestTimeout = min(producerConfiguration.requestTimeout, configuration.deliveryTimeout)
        var consumerConfiguration = KafkaConsumerConfiguration(bootstrapServers: configuration.bootstrapServers)
        consumerConfiguration.clientID = "healthcode-ingest-processor"
        consumerConfiguration.maxPollMessages = configuration.batchMessages
        // Inbound messages a publisher wrote in aborted transactions of its own are never processed.
        consumerConfiguration.properties["isolation.level"] = "read_committed"
        let producer: KafkaProducer? =
            configuration.delivery == .checkpointed
            ? try KafkaProducer(configuration: producerConfiguration, logger: logger) : nil
        let processor = IngestProcessor(
            configuration: configuration,
            makeIngestion: {
                EventIngestion(
                    log: NoEventLog(),
                    pseudonymizer: pseudonymizer,
                    configuration: gateway,
                    retractionTargets: stores.retractionTargets,
                    reviewOffices: stores.reviewOffices,
                    designations: stores.designations,
                    now: Instant.now,
                    logger: logger
                )
            },
            publishers: stores.publishers,
            checkpoints: checkpoints,
            admin: try KafkaAdmin(
                configuration: KafkaAdminConfiguration(bootstrapServers: configuration.bootstrapServers),
                logger: logger
            ),
            producer: producer,
            producerConfiguration: producerConfiguration,
            consumerConfiguration: consumerConfiguration,
            progress: progress,
            logger: logger
        )
        return (producer.map { [$0] } ?? []) + [processor]
    }
}

extension Inbound {
    /// `GET /health` (the processor's ``InboundProgress``: 503 while it restarts) and `GET /metrics` on
    /// `host:port`, for a processor running alone (`healthcode ingest-processor`).
    public static func operations(
        progress: InboundProgress,
        host: String,
        port: Int,
        metrics: (@Sendable () -> [UInt8])?,
        logger: Logger
    ) -> any Service {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.add(to: router, metrics: metrics) {
            let report = progress.report()
            return HealthReport(isHealthy: report.isHealthy, details: report.details)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "healthcode-ingest-processor"),
            logger: logger
        )
    }
}

/// The log an ingestion for the processor is made with: the processor always passes its own
/// (``EventIngestion/ingest(_:from:into:)``), so nothing is ever appended here.
private struct NoEventLog: EventLog {
    var isWriting: Bool { false }

    func append(_ records: [EventRecord]) async -> [Result<EventPosition, EventLogError>] {
        records.map { _ in
            .failure(EventLogError(code: "not-a-log", isRetriable: false, detail: "the processor passes its own log"))
        }
    }
}
