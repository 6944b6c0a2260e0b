import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Reads every publisher's inbound topic (``InboundTopic``) and applies to each message exactly what the HTTP
/// gateway applies (``EventIngestion``, the same code): the contract, the publisher's source and type scopes,
/// the pseudonym, `recordedtime` and the duplicate rule. A valid event goes to the events topic keyed by its
/// pseudonym; anything else to the publisher's rejects topic with the reasons. Each inbound message yields
/// exactly one output, whatever stops the processor (``IngestProcessorConfiguration/Delivery``).
///
/// One inbound message holds one event (structured-mode CloudEvents JSON); the partitions are assigned to this
/// processor directly (no consumer group: positions are its own), so run one processor per deployment.
public struct IngestProcessor: Service {
    let configuration: IngestProcessorConfiguration
    private let makeIngestion: @Sendable () -> EventIngestion
    private let publishers: any PublisherDirectory
    private let checkpoints: any InboundCheckpoints
    private let admin: KafkaAdmin
    /// The producer of the checkpointed delivery (the transactional one makes its own per session).
    private let producer: KafkaProducer?
    let producerConfiguration: KafkaProducerConfiguration
    private let consumerConfiguration: KafkaConsumerConfiguration
    let logger: Logger
    let progress: InboundProgress
    private let eventsCounter = Counter(label: "hc_inbound_messages_total", dimensions: [("output", "event")])
    private let rejectsCounter = Counter(label: "hc_inbound_messages_total", dimensions: [("output", "reject")])
    private let skippedCounter = Counter(label: "hc_inbound_messages_total", dimensions: [("output", "already")])
    private let restartCounter = Counter(label: "hc_inbound_restarts_total")

    /// - Parameter makeIngestion: the gateway's rules, made anew for each session: what a session that failed
    ///   had taken for accepted (its duplicate memory) may not have been written.
    init(
        configuration: IngestProcessorConfiguration,
        makeIngestion: @escaping @Sendable () -> EventIngestion,
        publishers: any PublisherDirectory,
        checkpoints: any InboundCheckpoints,
        admin: KafkaAdmin,
        producer: KafkaProducer?,
        producerConfiguration: KafkaProducerConfiguration,
        consumerConfiguration: KafkaConsumerConfiguration,
        progress: InboundProgress,
        logger: Logger
    ) {
        self.progress = progress
        self.configuration = configuration
        self.makeIngestion = makeIngestion
        self.publishers = publishers
        self.checkpoints = checkpoints
        self.admin = admin
        self.producer = producer
        self.producerConfiguration = producerConfiguration
        self.consumerConfiguration = consumerConfiguration
        self.logger = logger
    }

    /// Runs sessions until graceful shutdown: each reads the publishers, recovers its position and processes
    /// until the publishers change or something fails; then the next one starts from the checkpoints again.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await session() }
            } catch is PublishersChanged {
                continue
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                restartCounter.increment()
                progress.failed((error as? InboundProcessingError)?.code ?? "\(type(of: error))")
                logger.error(
                    "ingest processor stopped; starting again from its checkpoints",
                    metadata: ["error": "\(error)"]
                )
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: configuration.retryDelay) }
            }
        }
    }

    /// The publishers that produce to Kafka, by inbound topic.
    private func inboundPublishers() async throws -> [String: Publisher] {
        var byTopic: [String: Publisher] = [:]
        for record in try await publishers.publishers() where record.revokedAt == nil {
            guard let topic = record.inboundTopic else { continue }
            byTopic[topic] = record.publisher
        }
        return byTopic
    }

    private func session() async throws {
        let publishers = try await inboundPublishers()
        guard !publishers.isEmpty else {
            try await Task.sleep(for: configuration.refreshInterval)
            return
        }
        let topics = publishers.keys.sorted()
        try await InboundTopics(admin: admin, configuration: configuration).ensure(inbound: topics)
        let described = try await admin.describeTopics(
            topics + topics.map(InboundTopic.rejects(ofInbound:)) + [configuration.eventsTopic]
        )
        let partitionCounts = Dictionary(described.map { ($0.name, $0.partitions.count) }) { first, _ in first }
        func partitions(of topic: String) -> [KafkaTopicPartition] {
            (0..<Int32(partitionCounts[topic] ?? 0)).map { KafkaTopicPartition(topic: topic, partition: $0) }
        }
        func outputs(of inbound: String) -> [KafkaTopicPartition] {
            partitions(of: configuration.eventsTopic) + partitions(of: InboundTopic.rejects(ofInbound: inbound))
        }
        let inboundPartitions = topics.flatMap(partitions(of:))
        let ingestion = makeIngestion()
        progress.started()
        logger.info(
            "ingest processor reading inbound topics",
            metadata: ["topics": "\(topics.joined(separator: ","))", "partitions": "\(inboundPartitions.count)"]
        )
        switch configuration.delivery {
        case .checkpointed:
            guard let producer else {
                throw InboundProcessingError(code: "no-producer", context: "the checkpointed delivery needs one")
            }
            try await checkpointedSession(
                publishers: publishers,
                inboundPartitions: inboundPartitions,
                outputs: Dictionary(uniqueKeysWithValues: topics.map { ($0, outputs(of: $0)) }),
                ingestion: ingestion,
                producer: producer
            )
        case .transactional(let transactionalID, let group):
            try await transactionalSession(
                publishers: publishers,
                inboundPartitions: inboundPartitions,
                ingestion: ingestion,
                transactionalID: transactionalID,
                group: group
            )
        }
    }

    /// The ``IngestProcessorConfiguration/Delivery/checkpointed`` delivery: recovers from the checkpoints and the
    /// outputs' headers, then processes the inbound partitions side by side, checkpointing after each batch.
    private func checkpointedSession(
        publishers: [String: Publisher],
        inboundPartitions: [KafkaTopicPartition],
        outputs: [String: [KafkaTopicPartition]],
        ingestion: EventIngestion,
        producer: KafkaProducer
    ) async throws {
        let topics = publishers.keys.sorted()
        // Partitions never checkpointed get a checkpoint before anything of them is processed: their outputs
        // will lie after today's ends (a lower bound is enough: ListOffsets may lag, never lead).
        var stored = try await checkpoints.checkpoints(of: topics)
        let fresh = inboundPartitions.filter { stored[$0] == nil }
        if !fresh.isEmpty {
            let asked = fresh + Set(fresh.map(\.topic)).flatMap { outputs[$0] ?? [] }
            let watermarks = try await withConsumer { consumer in try await consumer.watermarks(for: asked) }
            var initial: [KafkaTopicPartition: InboundCheckpoint] = [:]
            for partition in fresh {
                var ends: [String: [Int32: Int64]] = [:]
                for output in outputs[partition.topic] ?? [] {
                    ends[output.topic, default: [:]][output.partition] = watermarks[output]?.high ?? 0
                }
                initial[partition] = InboundCheckpoint(
                    nextOffset: watermarks[partition]?.low ?? 0,
                    outputEnds: ends
                )
            }
            try await checkpoints.save(initial)
            stored.merge(initial) { kept, _ in kept }
        }

        // What was written after the checkpoints is found in the outputs themselves.
        var starts: [KafkaTopicPartition: Int64] = [:]
        for (_, checkpoint) in stored {
            for (topic, ends) in checkpoint.outputEnds {
                for (partition, end) in ends {
                    let key = KafkaTopicPartition(topic: topic, partition: partition)
                    starts[key] = min(starts[key] ?? end, end)
                }
            }
        }
        let scanned = starts
        let found = try await withConsumer { consumer in
            try await OutputScan(consumer: consumer).scan(from: scanned)
        }
        let already = found.origins.filter { origin in
            origin.offset >= (stored[origin.partition]?.nextOffset ?? .max)
        }
        if !already.isEmpty {
            logger.notice(
                "outputs written but not checkpointed before the last stop are not written again",
                metadata: ["messages": "\(already.count)"]
            )
        }
        let ends = OutputEnds(found.ends)
        let resumed = stored.mapValues(\.nextOffset)
        let send: @Sendable ([KafkaOutgoingMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>] = {
            messages in
            let results = await producer.sendReportingEach(messages)
            ends.record(results.compactMap { try? $0.get() })
            return results
        }
        try await withConsumer { consumer in
            try consumer.assign(
                Dictionary(
                    uniqueKeysWithValues: inboundPartitions.map {
                        ($0, KafkaOffset.offset(resumed[$0] ?? 0))
                    }
                )
            )
            // One lane per inbound partition: its batches in order, the partitions side by side. The consumer
            // hands out batches only while few wait, so memory stays bounded.
            let waiting = WaitingBatches()
            let lanesWanted = 2 * max(1, inboundPartitions.count)
            consumer.setDemand { waiting.count.load(ordering: .relaxed) < lanesWanted }
            var lanes: [KafkaTopicPartition: AsyncStream<KafkaMessageBatch>.Continuation] = [:]
            try await withThrowingTaskGroup { group in
                for partition in inboundPartitions {
                    guard let publisher = publishers[partition.topic] else { continue }
                    let (stream, continuation) = AsyncStream.makeStream(of: KafkaMessageBatch.self)
                    lanes[partition] = continuation
                    let start = resumed[partition] ?? 0
                    group.addTask {
                        var next = start
                        for await batch in stream {
                            defer {
                                waiting.count.subtract(1, ordering: .relaxed)
                                consumer.demandChanged()
                            }
                            let messages = batch.filter { $0.offset >= next }
                            guard !messages.isEmpty else { continue }
                            try await process(
                                messages,
                                of: partition,
                                from: publisher,
                                skipping: already,
                                ingestion: ingestion,
                                send: send
                            )
                            let checkpoint = InboundCheckpoint(
                                nextOffset: batch.nextOffset,
                                outputEnds: ends.snapshot(of: [
                                    configuration.eventsTopic, InboundTopic.rejects(ofInbound: partition.topic),
                                ])
                            )
                            try await checkpoints.save([partition: checkpoint])
                            next = batch.nextOffset
                        }
                    }
                }
                group.addTask { try await watchPublishers(topics: topics, closing: consumer) }
                let lanesByPartition = lanes
                group.addTask {
                    defer { for lane in lanesByPartition.values { lane.finish() } }
                    for try await batch in consumer.batches {
                        guard let lane = lanesByPartition[batch.topicPartition] else { continue }
                        waiting.count.add(1, ordering: .relaxed)
                        lane.yield(batch)
                    }
                }
                defer { for lane in lanes.values { lane.finish() } }
                try await group.next()
                consumer.close()
                group.cancelAll()
            }
        }
    }

    /// Ingests one batch's messages and writes their outputs; throws unless every output was acknowledged.
    func process(
        _ messages: [KafkaMessage],
        of partition: KafkaTopicPartition,
        from publisher: Publisher,
        skipping already: Set<InboundOrigin>,
        ingestion: EventIngestion,
        send: @escaping @Sendable ([KafkaOutgoingMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>]
    ) async throws {
        var origins: [InboundOrigin] = []
        var items: [Result<CloudEvent, EventValidationError>] = []
        for message in messages {
            let origin = InboundOrigin(partition: partition, offset: message.offset)
            if already.contains(origin) {
                skippedCounter.increment()
                continue
            }
            origins.append(origin)
            items.append(Result { () throws(EventValidationError) in try EventDecoder.decode(message.value) })
        }
        guard !items.isEmpty else { return }
        let outputs = BatchOutputs(eventsTopic: configuration.eventsTopic, origins: origins, send: send)
        let results = await ingestion.ingest(items, from: publisher, into: outputs)
        let rejectsTopic = InboundTopic.rejects(ofInbound: partition.topic)
        var rejects: [KafkaOutgoingMessage] = []
        var failed = 0
        for (result, origin) in zip(results, origins) {
            if result.status == .failed {
                failed += 1
            } else if InboundReject.isReported(result.status) {
                rejects.append(InboundReject.message(for: result, origin: origin, topic: rejectsTopic))
            }
        }
        let rejectFailures = await send(rejects).count { (try? $0.get()) == nil }
        progress.processed(messages.count)
        eventsCounter.increment(by: results.count { $0.status == .accepted })
        rejectsCounter.increment(by: rejects.count - rejectFailures)
        guard failed == 0, rejectFailures == 0 else {
            throw InboundProcessingError(
                code: "output-not-acknowledged",
                context: "\(partition) from offset \(messages[0].offset): \(failed + rejectFailures) outputs failed"
            )
        }
    }

    /// Ends the session once the set of inbound topics differs from `topics`: closes `consumer` (which ends its
    /// batches) and throws ``PublishersChanged``.
    func watchPublishers(topics: [String], closing consumer: KafkaConsumer) async throws {
        while true {
            try await Task.sleep(for: configuration.refreshInterval)
            guard let current = try? await inboundPublishers() else { continue }
            if current.keys.sorted() != topics {
                consumer.close()
                throw PublishersChanged()
            }
        }
    }

    /// Runs `body` with a consumer of its own, closed after.
    func withConsumer<Result: Sendable>(
        groupID: String? = nil,
        _ body: @Sendable (KafkaConsumer) async throws -> Result
    ) async throws -> Result {
        var consumerConfiguration = consumerConfiguration
        consumerConfiguration.groupID = groupID
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
        return try await withThrowingTaskGroup { group in
            group.addTask { try await consumer.run() }
            defer { consumer.close() }
            let result = try await body(consumer)
            consumer.close()
            try await group.waitForAll()
            return result
        }
    }
}

/// Batches handed to the lanes and not processed yet.
final class WaitingBatches: Sendable {
    let count = Atomic<Int>(0)
}

/// The publishers with inbound topics changed: the session ends and the next one reads the new set.
struct PublishersChanged: Error {}

/// The processor could not complete a batch; it starts again from its checkpoints.
public struct InboundProcessingError: Error, CustomStringConvertible {
    public var code: String
    public var context: String
    public var description: String { "\(code): \(context)" }
}
