import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import Logging

extension IngestProcessor {
    /// The ``IngestProcessorConfiguration/Delivery/transactional(transactionalID:group:)`` delivery (Apache
    /// Kafka): one transaction per batch holds the batch's outputs and its input offset (committed for `group`),
    /// so a `read_committed` reader sees the outputs exactly when the offset moved past them. Initialising the
    /// producer fences an earlier one with the same transactional id and aborts its open transaction; a session
    /// resumes at the group's committed offsets. A failed batch is aborted and the session ends: the next one
    /// starts again from the committed offsets with a new producer.
    func transactionalSession(
        publishers: [String: Publisher],
        inboundPartitions: [KafkaTopicPartition],
        ingestion: EventIngestion,
        transactionalID: String,
        group: String
    ) async throws {
        let producer = try KafkaTransactionalProducer(
            configuration: producerConfiguration,
            transactionalID: transactionalID,
            logger: logger
        )
        defer { producer.close() }
        try await producer.initializeTransactions(timeout: configuration.deliveryTimeout)
        let timeout = configuration.deliveryTimeout
        let send: @Sendable ([KafkaOutgoingMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>] = {
            messages in
            // Placed when the transaction commits; until then no position is known (-1).
            do throws(KafkaError) {
                try await producer.send(messages)
                return messages.map { .success(KafkaDeliveryReport(topic: $0.topic, partition: -1, offset: -1)) }
            } catch {
                return messages.map { _ in .failure(error) }
            }
        }
        try await withConsumer(groupID: group) { consumer in
            let committed = try await consumer.committedOffsets(of: inboundPartitions, timeout: timeout)
            let uncommitted = inboundPartitions.filter { committed[$0] == nil }
            let low = uncommitted.isEmpty ? [:] : try await consumer.watermarks(for: uncommitted)
            var next: [KafkaTopicPartition: Int64] = [:]
            for partition in inboundPartitions {
                next[partition] = committed[partition] ?? low[partition]?.low ?? 0
            }
            try consumer.assign(next.mapValues { KafkaOffset.offset($0) })
            let resumed = next
            try await withThrowingTaskGroup { tasks in
                tasks.addTask { try await watchPublishers(topics: publishers.keys.sorted(), closing: consumer) }
                tasks.addTask {
                    var next = resumed
                    for try await batch in consumer.batches {
                        guard let publisher = publishers[batch.topic], let expected = next[batch.topicPartition]
                        else { continue }
                        let messages = batch.filter { $0.offset >= expected }
                        guard !messages.isEmpty else { continue }
                        try producer.beginTransaction()
                        do {
                            try await process(
                                messages,
                                of: batch.topicPartition,
                                from: publisher,
                                skipping: [],
                                ingestion: ingestion,
                                send: send
                            )
                            try await producer.sendOffsets(
                                [batch.topicPartition: batch.nextOffset],
                                group: group,
                                timeout: timeout
                            )
                            try await commit(producer, timeout: timeout)
                        } catch {
                            try? await producer.abortTransaction(timeout: timeout)
                            throw error
                        }
                        next[batch.topicPartition] = batch.nextOffset
                    }
                }
                try await tasks.next()
                consumer.close()
                tasks.cancelAll()
            }
        }
    }

    /// Commits, calling again while librdkafka says the same call may succeed (a commit that timed out resumes).
    private func commit(_ producer: KafkaTransactionalProducer, timeout: Duration) async throws {
        for attempt in 1... {
            do {
                return try await producer.commitTransaction(timeout: timeout)
            } catch {
                if !error.isRetriable || attempt == 3 { throw error }
            }
        }
    }
}
