/// A partition of a topic. Ordered by topic, then partition.
public struct KafkaTopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The topic's name.
    public var topic: String
    /// The partition number, from 0.
    public var partition: Int32

    /// Creates a topic partition.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// Where a consumer starts reading a partition.
public struct KafkaOffset: Hashable, Sendable, CustomStringConvertible {
    /// The raw librdkafka offset: a non-negative offset, or one of librdkafka's logical offsets.
    public let rawValue: Int64

    private init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// The offset of the next message to read: one past the last message the caller processed.
    public static func offset(_ offset: Int64) -> KafkaOffset {
        precondition(offset >= 0, "a Kafka offset is non-negative")
        return KafkaOffset(rawValue: offset)
    }

    /// The oldest message still retained.
    public static let beginning = KafkaOffset(rawValue: -2)  // RD_KAFKA_OFFSET_BEGINNING
    /// Only messages produced from now on.
    public static let end = KafkaOffset(rawValue: -1)  // RD_KAFKA_OFFSET_END
    /// The consumer group's committed offset, or `autoOffsetReset` when the group has none.
    public static let committed = KafkaOffset(rawValue: -1001)  // RD_KAFKA_OFFSET_INVALID

    public var description: String {
        switch rawValue {
        case -2: "beginning"
        case -1: "end"
        case -1001: "committed"
        default: "\(rawValue)"
        }
    }
}

/// A partition's low and high watermarks: the first retained offset and the offset the next produced
/// message will get ("end offset"). A consumer positioned at `high` has read everything.
public struct KafkaWatermarks: Hashable, Sendable {
    /// The oldest retained offset.
    public var low: Int64
    /// The end offset: one past the last message in the partition.
    public var high: Int64

    /// Creates watermarks.
    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}

/// A Kafka record header. Header values are opaque bytes; `nil` is a header without a value.
public struct KafkaHeader: Hashable, Sendable {
    /// The header's name.
    public var key: String
    /// The header's value.
    public var value: [UInt8]?

    /// Creates a header.
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}
