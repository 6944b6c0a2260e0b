/// How a ``KafkaConsumer`` talks to the cluster.
///
/// Offsets belong to the caller: the consumer never commits (`enable.auto.commit=false`,
/// `enable.auto.offset.store=false`); the caller stores them (for example in the same database
/// transaction as its results) and returns them from its assignment hook. Every field maps to a
/// librdkafka property; ``properties`` overrides anything.
public struct KafkaConsumerConfiguration: Sendable {
    /// `bootstrap.servers`: `host:port` of one or more brokers.
    public var bootstrapServers: [String]
    /// `group.id`: the consumer group. Required for group subscriptions; for manual assignment a
    /// group is optional. Default `nil`.
    public var groupID: String?
    /// `client.id`, also the `client_id` dimension of the statistics metrics. Default `healthcode-consumer`.
    public var clientID: String
    /// `partition.assignment.strategy`. Default ``KafkaRebalanceProtocol/cooperativeSticky``.
    public var rebalanceProtocol: KafkaRebalanceProtocol
    /// `session.timeout.ms`: how long the group waits for a silent member before rebalancing.
    /// Default 45 s. Lower values (6 s) make group joins much faster on small clusters.
    public var sessionTimeout: Duration
    /// `heartbeat.interval.ms`. Default 3 s; keep it well below ``sessionTimeout``.
    public var heartbeatInterval: Duration
    /// `max.poll.interval.ms`: how long the caller may take between two batches (including its
    /// rebalance hooks) before it is considered failed and leaves the group. Default 300 s.
    public var maxPollInterval: Duration
    /// `auto.offset.reset`: where to start when ``KafkaOffset/committed`` finds no committed offset or
    /// an offset is out of range. Default ``KafkaAutoOffsetReset/earliest``.
    public var autoOffsetReset: KafkaAutoOffsetReset
    /// Most messages taken from librdkafka in one poll, spread over per-partition batches. Default 2 048.
    public var maxPollMessages: Int
    /// Most messages fetched but not yet handed to the caller. When reached, the consumer stops polling
    /// until the caller takes batches (backpressure); librdkafka then stops fetching once its own
    /// prefetch queue (``prefetchMaxMessagesPerPartition``, ``prefetchMaxBytes``) is full.
    /// Default 20 000.
    public var maxBufferedMessages: Int
    /// How long the buffer may stay full, with the caller taking nothing, before the consumer pauses
    /// its partitions in librdkafka and polls on. A parked poll thread would not serve rebalances: a
    /// stuck caller (its database down) would hold up every other member's rebalance until
    /// ``maxPollInterval``. Polling with the partitions paused serves them at once; librdkafka drops
    /// what it had prefetched and fetches it again when the caller takes batches. Default 2 s.
    public var pauseWhenFullFor: Duration
    /// `queued.min.messages`: librdkafka's prefetch target per partition. Default 100 000.
    public var prefetchMaxMessagesPerPartition: Int
    /// `queued.max.messages.kbytes` (in bytes here): librdkafka's prefetch limit. Default 64 MiB.
    public var prefetchMaxBytes: Int
    /// `fetch.wait.max.ms`: how long the broker may hold a fetch to reach ``fetchMinBytes``. Default 100 ms.
    public var fetchMaxWait: Duration
    /// `fetch.min.bytes`: how much a fetch waits for (up to ``fetchMaxWait``) before the broker answers.
    /// Default 1 byte: a fetch answers as soon as anything is there.
    public var fetchMinBytes: Int
    /// `statistics.interval.ms`: how often librdkafka's statistics are emitted as metrics; `nil` is off.
    /// Default `nil`.
    public var statisticsInterval: Duration?
    /// Raw librdkafka properties, applied last (they override the fields above).
    public var properties: [String: String]

    /// Creates a configuration with the documented defaults.
    public init(bootstrapServers: [String], groupID: String? = nil) {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        self.clientID = "healthcode-consumer"
        self.rebalanceProtocol = .cooperativeSticky
        self.sessionTimeout = .seconds(45)
        self.heartbeatInterval = .seconds(3)
        self.maxPollInterval = .seconds(300)
        self.autoOffsetReset = .earliest
        self.maxPollMessages = 2048
        self.maxBufferedMessages = 20_000
        self.pauseWhenFullFor = .seconds(2)
        self.prefetchMaxMessagesPerPartition = 100_000
        self.prefetchMaxBytes = 64 * 1024 * 1024
        self.fetchMaxWait = .milliseconds(100)
        self.fetchMinBytes = 1
        self.statisticsInterval = nil
        self.properties = [:]
    }

    /// The librdkafka properties this configuration stands for.
    var rdkafkaProperties: [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientID,
            "partition.assignment.strategy": rebalanceProtocol.rawValue,
            "session.timeout.ms": sessionTimeout.rdkafkaMilliseconds,
            "heartbeat.interval.ms": heartbeatInterval.rdkafkaMilliseconds,
            "max.poll.interval.ms": maxPollInterval.rdkafkaMilliseconds,
            "auto.offset.reset": autoOffsetReset.rawValue,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "enable.partition.eof": "false",
            "queued.min.messages": String(prefetchMaxMessagesPerPartition),
            "queued.max.messages.kbytes": String(max(1, prefetchMaxBytes / 1024)),
            "fetch.wait.max.ms": fetchMaxWait.rdkafkaMilliseconds,
            "fetch.min.bytes": String(max(1, fetchMinBytes)),
            "statistics.interval.ms": statisticsInterval?.rdkafkaMilliseconds ?? "0",
        ]
        if let groupID { result["group.id"] = groupID }
        result.merge(properties) { _, raw in raw }
        return result
    }
}

/// The group's partition assignment protocol (`partition.assignment.strategy`).
public enum KafkaRebalanceProtocol: String, Sendable, CaseIterable {
    /// Incremental rebalancing: only moved partitions are revoked; the others keep flowing.
    case cooperativeSticky = "cooperative-sticky"
    /// Eager rebalancing with range assignment: every rebalance revokes the whole assignment.
    case eagerRange = "range"
    /// Eager rebalancing with round-robin assignment.
    case eagerRoundRobin = "roundrobin"
}

/// Where to start without a usable offset (`auto.offset.reset`).
public enum KafkaAutoOffsetReset: String, Sendable, CaseIterable {
    /// The oldest retained message.
    case earliest
    /// Only new messages.
    case latest
    /// Fail the partition (the consumer logs an error and delivers nothing from it).
    case error
}
