import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
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
        logger: Logger
    ) throws -> [any Service] {
        try configuration.validate()
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.bootstrapServers)
        producerConfiguration.clientID = "healthcode-ingest-processor"
        producerConfiguration.deliveryTimeout = configuration.deliveryTimeout
        producerConfiguration.requestTimeout = min(producerConfiguration.requestTimeout, configuration.deliveryTimeout)
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        var consumerConfiguration = KafkaConsumerConfiguration(bootstrapServers: configuration.bootstrapServers)
        consumerConfiguration.clientID = "healthcode-ingest-processor"
        consumerConfiguration.maxPollMessages = configuration.batchMessages
        let ingestion = EventIngestion(
            log: KafkaEventLog(producer: producer, topic: configuration.eventsTopic),
            pseudonymizer: pseudonymizer,
            configuration: gateway,
            retractionTargets: stores.retractionTargets,
            reviewOffices: stores.reviewOffices,
            designations: stores.designations,
            now: Instant.now,
            logger: logger
        )
        let processor = IngestProcessor(
            configuration: configuration,
            ingestion: ingestion,
            publishers: stores.publishers,
            checkpoints: checkpoints,
            admin: try KafkaAdmin(
                configuration: KafkaAdminConfiguration(bootstrapServers: configuration.bootstrapServers),
                logger: logger
            ),
            producer: producer,
            consumerConfiguration: consumerConfiguration,
            logger: logger
        )
        return [producer, processor]
    }
}
