import HealthCodeKafka
import Synchronization

/// Reads the output partitions from where the checkpoints say later outputs lie to their ends, and collects the
/// origins (``InboundOrigin``) of the outputs found: the messages a processor wrote but did not checkpoint before
/// it stopped. Also returns each partition's end, where this run's outputs will follow.
struct OutputScan {
    let consumer: KafkaConsumer

    struct Found: Sendable {
        var origins: Set<InboundOrigin> = []
        var ends: [String: [Int32: Int64]] = [:]
    }

    /// Scans `from` (output partition → first offset to read); `consumer` must be running and is closed after.
    func scan(from starts: [KafkaTopicPartition: Int64]) async throws -> Found {
        let progress = Progress(starts)
        try consumer.assign(starts.mapValues { KafkaOffset.offset($0) })
        return try await withThrowingTaskGroup { group in
            group.addTask {
                for try await batch in consumer.batches {
                    let origins = batch.compactMap { message in
                        message.headers.first { $0.key == InboundOrigin.header }?.value.flatMap(
                            InboundOrigin.init(headerValue:)
                        )
                    }
                    progress.state.withLock {
                        $0.positions[batch.topicPartition] = batch.nextOffset
                        $0.found.origins.formUnion(origins)
                    }
                }
            }
            // A fetch's high watermark is exact on every broker (ListOffsets may lag): a partition is read to
            // its end once a fetch reported an end no further than what was read.
            while true {
                let fetched = try await consumer.fetchedWatermarks(for: Array(starts.keys))
                let done = progress.state.withLock { state in
                    starts.keys.allSatisfy { partition in
                        guard let high = fetched[partition]?.high else { return false }
                        return (state.positions[partition] ?? 0) >= high
                    }
                }
                if done { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            consumer.close()
            try await group.waitForAll()
            return progress.state.withLock { state in
                var found = state.found
                for (partition, position) in state.positions {
                    found.ends[partition.topic, default: [:]][partition.partition] = position
                }
                return found
            }
        }
    }

    /// What the scan has read so far.
    final class Progress: Sendable {
        let state: Mutex<(positions: [KafkaTopicPartition: Int64], found: Found)>
        init(_ starts: [KafkaTopicPartition: Int64]) { state = Mutex((starts, Found())) }
    }
}
