/// How a ``KafkaProducer`` talks to the cluster.
///
/// The producer is always idempotent with `acks=all`: a message reported delivered was written to all
/// in-sync replicas exactly once, in order per partition. Every field maps to a librdkafka property;
/// ``properties`` overrides anything (escape hatch for settings not modelled here, for example TLS).
public struct KafkaProducerConfiguration: Sendable {
    /// `bootstrap.servers`: `host:port` of one or more brokers.
    public var bootstrapServers: [String]
    /// `client.id`, also the `client_id` dimension of the statistics metrics. Default `healthcode-producer`.
    public var clientID: String
    /// `linger.ms`: how long a message may wait for others to fill a batch. Default 5 ms.
    public var linger: Duration
    /// `batch.num.messages`: most messages in one produce request batch. Default 10 000.
    public var batchMaxMessages: Int
    /// `batch.size`: most bytes in one batch. Default 1 MB.
    public var batchMaxBytes: Int
    /// `compression.codec`. Default ``KafkaCompression/none``.
    public var compression: KafkaCompression
    /// `partitioner` for keyed messages. Default ``KafkaPartitioner/murmur2Random`` (the Java client's).
    public var partitioner: KafkaPartitioner
    /// `delivery.timeout.ms`: how long librdkafka retries a message before failing its delivery
    /// (``KafkaError/Code-swift.struct/delivery``, retriable). Default 120 s.
    public var deliveryTimeout: Duration
    /// `request.timeout.ms`: how long the producer waits for a broker's acknowledgement. Default 30 s.
    public var requestTimeout: Duration
    /// Most messages sent but not yet acknowledged. A `send` that would exceed it waits (backpressure)
    /// until acknowledgements free room; a single batch larger than the bound is admitted alone.
    /// Default 100 000.
    public var maxInFlightMessages: Int
    /// How long a graceful shutdown waits for unacknowledged messages before failing them. Default 30 s.
    public var shutdownFlushTimeout: Duration
    /// After a fatal error (idempotence broken, producer fenced) the client is destroyed and a new one
    /// created after this pause (doubling up to 30 s while creating fails); meanwhile sends fail at once,
    /// retriably. Default 1 s.
    public var fatalErrorRebuildDelay: Duration
    /// `statistics.interval.ms`: how often librdkafka's statistics are emitted as metrics; `nil` is off.
    /// Default `nil`.
    public var statisticsInterval: Duration?
    /// Raw librdkafka properties, applied last (they override the fields above).
    public var properties: [String: String]

    /// Creates a configuration with the documented defaults.
    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = "healthcode-producer"
        self.linger = .milliseconds(5)
        self.batchMaxMessages = 10_000
        self.batchMaxBytes = 1_000_000
        self.compression = .none
        self.partitioner = .murmur2Random
        self.deliveryTimeout = .seconds(120)
        self.requestTimeout = .seconds(30)
        self.maxInFlightMessages = 100_000
        self.shutdownFlushTimeout = .seconds(30)
        self.fatalErrorRebuildDelay = .seconds(1)
        self.statisticsInterval = nil
        self.properties = [:]
    }

    /// The librdkafka properties this configuration stands for.
    var rdkafkaProperties: [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientID,
            "enable.idempotence": "true",
            "acks": "all",
            "linger.ms": linger.rdkafkaMilliseconds,
            "batch.num.messages": String(batchMaxMessages),
            "batch.size": String(batchMaxBytes),
            "compression.codec": compression.rawValue,
            "partitioner": partitioner.rawValue,
            "delivery.timeout.ms": deliveryTimeout.rdkafkaMilliseconds,
            "request.timeout.ms": requestTimeout.rdkafkaMilliseconds,
            // The in-flight bound is enforced before librdkafka's queue, which must never refuse a message.
            "queue.buffering.max.messages": "2147483647",
            "queue.buffering.max.kbytes": "2147483647",
            "statistics.interval.ms": statisticsInterval?.rdkafkaMilliseconds ?? "0",
        ]
        result.merge(properties) { _, raw in raw }
        return result
    }
}

/// Compression of produced batches (`compression.codec`).
public enum KafkaCompression: String, Sendable, CaseIterable {
    /// No compression.
    case none
    /// gzip: small, slow.
    case gzip
    /// Snappy.
    case snappy
    /// LZ4: fast, a good default for JSON events.
    case lz4
    /// Zstandard.
    case zstd
}

/// How keyed messages are mapped to partitions (`partitioner`); messages without a key are spread.
public enum KafkaPartitioner: String, Sendable, CaseIterable {
    /// murmur2 hash of the key, as the Java client does: the same key lands in the same partition
    /// whichever client produced it.
    case murmur2Random = "murmur2_random"
    /// CRC32 hash of the key (librdkafka's own default).
    case consistentRandom = "consistent_random"
    /// FNV-1a hash of the key (Sarama's).
    case fnv1aRandom = "fnv1a_random"
}

extension Duration {
    /// Whole milliseconds, rounded up so that a positive duration never becomes 0, as a property value.
    var rdkafkaMilliseconds: String {
        String(milliseconds)
    }

    /// Whole milliseconds, rounded up, clamped to `Int32`.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(max(0, min(millis, Int64(Int32.max))))
    }
}
