import Foundation

/// A consumed message. Its key and value are slices of the batch's storage (no copy per message).
public struct KafkaMessage: Sendable {
    /// The topic it was read from.
    public let topic: String
    /// The partition it was read from.
    public let partition: Int32
    /// Its offset in the partition. After processing it, the next offset to read is `offset + 1`.
    public let offset: Int64
    /// The producer's or broker's timestamp, in milliseconds since 1970, when the record has one.
    public let timestampMilliseconds: Int64?
    /// The key, `nil` when the record has none.
    public let key: ArraySlice<UInt8>?
    /// The payload.
    public let value: ArraySlice<UInt8>
    /// The record's headers.
    public let headers: [KafkaHeader]

    /// ``timestampMilliseconds`` as a date.
    public var timestamp: Date? {
        timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }
}

/// Consecutive messages of one partition, in offset order, as returned by ``KafkaConsumer/batches``.
///
/// A batch is a random-access collection of ``KafkaMessage``; all payloads share one buffer.
public struct KafkaMessageBatch: Sendable, RandomAccessCollection {
    struct Record {
        var offset: Int64
        var timestamp: Int64
        var keyStart: Int
        var keyCount: Int  // -1: no key
        var valueStart: Int
        var valueCount: Int
        var headers: Int  // index into headerLists, -1: none
    }

    /// The partition the messages come from.
    public let topicPartition: KafkaTopicPartition
    /// The partition's end offset (high watermark) as last seen by the consumer, -1 when unknown.
    public let highWatermark: Int64
    let storage: [UInt8]
    let records: [Record]
    let headerLists: [[KafkaHeader]]

    /// The topic the messages come from.
    public var topic: String { topicPartition.topic }
    /// The partition the messages come from.
    public var partition: Int32 { topicPartition.partition }
    /// The offset to store once the whole batch is processed: one past its last message.
    public var nextOffset: Int64 { records[records.count - 1].offset + 1 }
    /// Messages in the partition after this batch, as of ``highWatermark`` (0 when unknown).
    public var lag: Int64 { highWatermark < 0 ? 0 : Swift.max(0, highWatermark - nextOffset) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { records.count }

    public subscript(position: Int) -> KafkaMessage {
        let record = records[position]
        return KafkaMessage(
            topic: topicPartition.topic,
            partition: topicPartition.partition,
            offset: record.offset,
            timestampMilliseconds: record.timestamp >= 0 ? record.timestamp : nil,
            key: record.keyCount < 0 ? nil : storage[record.keyStart..<record.keyStart + record.keyCount],
            value: storage[record.valueStart..<record.valueStart + record.valueCount],
            headers: record.headers < 0 ? [] : headerLists[record.headers]
        )
    }
}
