import Foundation
import HealthCodeCore
import HealthCodeHTTP
import HealthCodeKafka
import Hummingbird
import Logging
import ServiceLifecycle

/// The projector's one entry point: its services assembled from its configuration and from what it
/// declares it needs (``ProjectionStorage``). Nothing starts until ``services`` run in a
/// `ServiceGroup`, after whatever serves the storage (a PostgreSQL client).
public struct Projector: Sendable {
    /// The Kafka consumer the projection loop runs inside it; for probes such as end offsets.
    public let consumer: KafkaConsumer
    /// What `/health` reports.
    public let progress: ProjectorProgress
    /// The projection loop, the re-evaluator and the reports to PostgreSQL, in the order they must start.
    public let services: [any Service]

    /// Assembles a projector; throws ``ConfigurationError`` for a setting out of bounds.
    public static func build(
        configuration: ProjectorConfiguration,
        storage: any ProjectionStorage,
        ruleSet: RuleSet,
        logger: Logger
    ) throws -> Projector {
        try configuration.validate()
        // Read directly, the projector joins no group (its positions keep the group's name).
        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: configuration.bootstrapServers,
            groupID: configuration.assignment == .group ? configuration.group : nil
        )
        consumerConfiguration.clientID = "healthcode-projector"
        // One poll spans all assigned partitions; asking for several batches' worth lets each
        // partition's batch (one transaction) fill up instead of splitting a poll eight ways.
        consumerConfiguration.maxPollMessages = configuration.batchSize * 8
        consumerConfiguration.sessionTimeout = configuration.sessionTimeout
        consumerConfiguration.heartbeatInterval = configuration.heartbeatInterval
        // librdkafka hands a rebalance to the application in the same queue as the fetched messages,
        // behind those already prefetched: with its defaults (100k messages a partition) a busy
        // projector prefetched its whole backlog and let a joining member wait until it had applied
        // it all. 16 batches a partition bound that wait and memory (at 1000 events a batch, RSS 111 MB
        // vs 165 MB in `bench projector`) at the same rate; 2 batches halved the rate (fetches could not
        // keep up). At 2000 events a batch the peak RSS is ~160 MB with a backlog of a million events.
        consumerConfiguration.prefetchMaxMessagesPerPartition = configuration.batchSize * 16
        consumerConfiguration.prefetchMaxBytes = 64 * 1024 * 1024
        consumerConfiguration.fetchMinBytes = configuration.fetchMinBytes
        consumerConfiguration.fetchMaxWait = configuration.fetchMaxWait
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
        let catalog = RiskAreaCatalog(archive: storage, logger: logger)
        // Activated rule sets decide; the configured one only until the first activation.
        let rules = RuleSetCatalog(source: storage, configured: Policy(ruleSet: ruleSet), logger: logger)
        let projection = Projection(
            store: storage,
            catalog: catalog,
            rules: rules,
            group: configuration.group,
            now: Instant.now,
            logger: logger
        )
        let progress = ProjectorProgress()
        let service = ProjectorService(
            consumer: consumer,
            projection: projection,
            store: storage,
            configuration: configuration,
            progress: progress,
            partitionCount: {
                let admin = try KafkaAdmin(
                    configuration: KafkaAdminConfiguration(bootstrapServers: configuration.bootstrapServers),
                    logger: logger
                )
                let description = try await admin.describeTopics([configuration.topic]).first
                guard let count = description?.partitions.count, count > 0 else {
                    throw KafkaError(
                        code: .query,
                        isRetriable: true,
                        reason: "topic \(configuration.topic) has no partitions"
                    )
                }
                return count
            },
            logger: logger
        )
        let reevaluator = Reevaluator(
            store: storage,
            catalog: catalog,
            rules: rules,
            configuration: Reevaluator.Configuration(),
            progress: progress,
            now: Instant.now,
            logger: logger
        )
        let reporter = ProgressReporter(
            store: storage,
            progress: progress,
            configuration: configuration,
            now: Instant.now,
            logger: logger
        )
        return Projector(consumer: consumer, progress: progress, services: [service, reevaluator, reporter])
    }

    /// The projector's operational HTTP server: `/metrics`, and `/health` answering 503 when the
    /// projector is not progressing (messages wait and nothing was committed for `stallAfter`), has
    /// halted a partition whose log was replaced (`log-replaced`), holds no partition while the topic's
    /// messages wait (`no-partitions`) or its re-evaluator keeps failing (`reevaluation-failing`).
    public static func operations(
        progress: ProjectorProgress,
        configuration: ProjectorConfiguration,
        host: String,
        port: Int,
        stallAfter: Duration,
        metrics: (@Sendable () -> [UInt8])?,
        logger: Logger
    ) -> any Service {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.add(to: router, metrics: metrics) {
            let status = progress.status(stallAfter: stallAfter, unassignedAfter: configuration.unassignedAfter)
            var details = [
                "status": status.state, "lag": "\(status.lag)", "batches": "\(status.batches)",
                "partitions": "\(status.assignedPartitions)", "group": configuration.group,
                "assignment": configuration.assignment.rawValue,
            ]
            if let seconds = status.secondsReevaluationFailing {
                details["secondsReevaluationFailing"] = String(format: "%.1f", seconds)
            }
            if let seconds = status.secondsSinceLastCommit {
                details["secondsSinceLastCommit"] = String(format: "%.1f", seconds)
            }
            if !status.replacedLogs.isEmpty {
                details["replacedLogPartitions"] = status.replacedLogs.map(String.init).joined(separator: ",")
            }
            return HealthReport(isHealthy: status.isHealthy, details: details)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "healthcode-projector"),
            logger: logger
        )
    }

    /// Whether `group` has applied every message of the topic's first `partitions` partitions: the
    /// stored positions equal the partitions' end offsets as `consumer` reads them.
    public static func caughtUp(
        topic: String,
        partitions: Int,
        group: String,
        consumer: KafkaConsumer,
        storage: any ProjectionStorage
    ) async throws -> Bool {
        let partitions = (0..<Int32(partitions)).map { KafkaTopicPartition(topic: topic, partition: $0) }
        let ends = try await consumer.watermarks(for: partitions)
        let stored = try await storage.positions(group: group, topic: topic, partitions: partitions.map(\.partition))
        // Exactly at the end: a stored position beyond it is a replaced log (its events not applied),
        // never "caught up".
        return partitions.allSatisfy { partition in
            (stored[partition.partition] ?? 0) == (ends[partition]?.high ?? 0)
        }
    }

    /// The replay of dead letters through the projection, on `storage` (which must be served).
    public static func deadLetterReplay(
        storage: any ProjectionStorage,
        ruleSet: RuleSet,
        logger: Logger
    )
        -> DeadLetterReplay
    {
        let projection = Projection(
            store: storage,
            catalog: RiskAreaCatalog(archive: storage, logger: logger),
            rules: RuleSetCatalog(source: storage, configured: Policy(ruleSet: ruleSet), logger: logger),
            group: "dead-letter-replay",
            now: Instant.now,
            logger: logger
        )
        return DeadLetterReplay(store: storage, projection: projection)
    }
}
