/// A message to produce.
public struct KafkaOutgoingMessage: Sendable {
    /// The topic to write to.
    public var topic: String
    /// The partition; `nil` lets the configured partitioner choose from the key.
    public var partition: Int32?
    /// The key: messages with the same key land in the same partition, in order. `nil` spreads messages.
    public var key: [UInt8]?
    /// The payload.
    public var value: [UInt8]
    /// Record headers.
    public var headers: [KafkaHeader]

    /// Creates a message.
    public init(
        topic: String,
        key: [UInt8]? = nil,
        value: [UInt8],
        headers: [KafkaHeader] = [],
        partition: Int32? = nil
    ) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }
}

/// Where the broker stored a message: it acknowledged it on all in-sync replicas (`acks=all`).
public struct KafkaDeliveryReport: Hashable, Sendable {
    /// The topic written to.
    public var topic: String
    /// The partition written to.
    public var partition: Int32
    /// The message's offset in the partition.
    public var offset: Int64

    /// Creates a delivery report.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}
