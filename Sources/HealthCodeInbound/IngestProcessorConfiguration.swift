import HealthCodeCore
import HealthCodeKafka

/// Settings of the ingest processor (``IngestProcessor``), which reads the publishers' inbound topics.
public struct IngestProcessorConfiguration: Sendable {
    /// How the processor makes its outputs and its input positions agree, so that each inbound message
    /// yields exactly one output (an event or a reject) whatever crashes.
    public enum Delivery: Sendable, Hashable {
        /// The default, for any broker with an idempotent producer (the local Tansu broker included): outputs
        /// carry their inbound position in a header (`hc-inbound`); positions are checkpointed in PostgreSQL
        /// after the broker acknowledged every output before them; a restarted processor reads the outputs
        /// written after the last checkpoint and does not write them again. See docs/INBOUND.md.
        case checkpointed
        /// Kafka transactions (Apache Kafka): each batch's outputs and its input offsets (committed for
        /// `group`) commit together, under `transactionalID` (one per processor instance); consumers of the
        /// events topic read `read_committed`.
        case transactional(transactionalID: String, group: String)
    }

    /// Kafka bootstrap servers. Default `127.0.0.1:19092` (the local broker).
    public var bootstrapServers: [String] = ["127.0.0.1:19092"]
    /// The events topic the projector reads. Default `healthcode.events`.
    public var eventsTopic: String = "healthcode.events"
    /// Partitions of each inbound and rejects topic the processor creates. Default 4.
    public var inboundPartitions: Int = 4
    /// Retention of the inbound and rejects topics it creates (`retention.ms`): inbound messages are only
    /// waiting to be processed. Default 7 days.
    public var inboundRetention: Duration = .seconds(7 * 24 * 3600)
    /// How often the publishers with an inbound topic are read again (new ones start being read, revoked ones
    /// stop). Default 10 s.
    public var refreshInterval: Duration = .seconds(10)
    /// The most messages one batch of an inbound partition holds. Default 2000.
    public var batchMessages: Int = 2000
    /// Wait before trying again after a failure (broker or database away). Default 1 s.
    public var retryDelay: Duration = .seconds(1)
    /// Longest a produced output may wait for the broker's acknowledgement. Default 30 s.
    public var deliveryTimeout: Duration = .seconds(30)
    /// How outputs and positions are made to agree. Default ``Delivery/checkpointed``.
    public var delivery: Delivery = .checkpointed

    public init() {}

    /// Refuses settings the processor cannot run with, naming the setting.
    public func validate() throws(ConfigurationError) {
        try ConfigurationError.check(
            "ingest-processor",
            [
                (!bootstrapServers.isEmpty, "bootstrapServers", "must name at least one broker"),
                (!eventsTopic.isEmpty, "eventsTopic", "must not be empty"),
                ((1...1000).contains(inboundPartitions), "inboundPartitions", "must be between 1 and 1000"),
                (inboundRetention >= .seconds(60), "inboundRetention", "must be at least a minute"),
                (refreshInterval > .zero, "refreshInterval", "must be more than 0"),
                ((1...100_000).contains(batchMessages), "batchMessages", "must be between 1 and 100000"),
                (retryDelay > .zero, "retryDelay", "must be more than 0"),
                (deliveryTimeout >= .seconds(1), "deliveryTimeout", "must be at least 1 s"),
            ]
        )
    }
}
