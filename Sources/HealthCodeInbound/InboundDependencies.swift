import HealthCodeKafka

/// Where the processor stands in one inbound partition (``IngestProcessorConfiguration/Delivery/checkpointed``).
public struct InboundCheckpoint: Hashable, Sendable {
    /// Every message before it has its output acknowledged by the broker.
    public var nextOffset: Int64
    /// Per output topic and partition, an offset at or before which every output of a later message of this
    /// inbound partition lies: where a restarted processor starts looking for outputs it did not checkpoint.
    public var outputEnds: [String: [Int32: Int64]]

    public init(nextOffset: Int64, outputEnds: [String: [Int32: Int64]]) {
        self.nextOffset = nextOffset
        self.outputEnds = outputEnds
    }
}

/// The processor's checkpoints (PostgreSQL table `inbound_checkpoint` in production).
public protocol InboundCheckpoints: Sendable {
    /// The stored checkpoints of the partitions of `topics`.
    func checkpoints(of topics: [String]) async throws -> [KafkaTopicPartition: InboundCheckpoint]
    /// Stores checkpoints, in one transaction; a checkpoint never moves back.
    func save(_ checkpoints: [KafkaTopicPartition: InboundCheckpoint]) async throws
}
