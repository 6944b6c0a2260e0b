import HealthCodeCore
import HealthCodeKafka
import Logging
import ServiceLifecycle

/// The gateway's one entry point: its services assembled from its configuration and from what it
/// declares it needs (``GatewayStores``: ``PublisherDirectory``, ``RetractionTargets``,
/// ``ReviewOffices``, ``AssertionUses``). Nothing starts until the services run in a `ServiceGroup`,
/// after whatever serves those (a PostgreSQL client).
public enum Gateway {
    /// The Kafka producer, the publisher registry, the releases of approved overrides and designations and
    /// the HTTP server, in the order they must start.
    ///
    /// - Parameters:
    ///   - configuration: validated first (``GatewayConfiguration/validate()``).
    ///   - metrics: renders the Prometheus exposition for `/metrics`, if given.
    ///   - onServerRunning: called with the bound port once the server listens.
    public static func build(
        configuration: GatewayConfiguration,
        pseudonymizer: Pseudonymizer,
        stores: GatewayStores,
        metrics: (@Sendable () -> [UInt8])? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) throws -> [any Service] {
        try configuration.validate()
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.bootstrapServers)
        producerConfiguration.clientID = "healthcode-gateway"
        producerConfiguration.deliveryTimeout = configuration.deliveryTimeout
        producerConfiguration.linger = configuration.produceLinger
        producerConfiguration.requestTimeout = min(producerConfiguration.requestTimeout, configuration.deliveryTimeout)
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        let registry = PublisherRegistry(
            directory: stores.publishers,
            assertionUses: stores.assertionUses,
            configuration: configuration,
            logger: logger
        )
        let log = KafkaEventLog(producer: producer, topic: configuration.topic)
        let release = HeldReviewRelease(
            offices: stores.reviewOffices,
            log: log,
            interval: configuration.heldReviewInterval,
            logger: logger
        )
        let designationRelease = HeldDesignationRelease(
            designations: stores.heldDesignations,
            log: log,
            interval: configuration.heldReviewInterval,
            logger: logger
        )
        let ingestion = EventIngestion(
            log: log,
            pseudonymizer: pseudonymizer,
            configuration: configuration,
            retractionTargets: stores.retractionTargets,
            reviewOffices: stores.reviewOffices,
            designations: stores.designations,
            now: Instant.now,
            logger: logger
        )
        let application = GatewayApplication.make(
            ingestion: ingestion,
            publishers: registry,
            configuration: configuration,
            metrics: metrics,
            onServerRunning: onServerRunning,
            logger: logger
        )
        return [producer, registry, release, designationRelease, application]
    }
}
