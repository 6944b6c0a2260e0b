import Foundation
import HealthCodeAPI
import HealthCodeCore
import HealthCodeGateway
import HealthCodeHTTP
import HealthCodeKafka
import HealthCodePostgres
import HealthCodeProjector
import Hummingbird
import Logging
import NIOPosix
import PostgresNIO
import ServiceLifecycle

/// Where the event topic lives.
public struct EventTopicConfiguration: Sendable {
    /// Kafka bootstrap servers. Default `127.0.0.1:19092` (the local broker of `scripts/infra.sh`).
    public var bootstrapServers: [String] = ["127.0.0.1:19092"]
    /// The topic of all events. Default `healthcode.events`.
    public var topic: String = "healthcode.events"
    /// Partitions when the topic is created; the most projectors that can share the work. Default 8.
    public var partitions: Int = 8

    /// The local defaults.
    public init() {}
}

/// Assembles HealthCode's services from configuration: the composition root shared by the
/// `healthcode` executable and the integration tests. It builds objects; nothing starts until the
/// returned services run in a `ServiceGroup`.
public enum Backbone {
    /// Applies the schema migrations and creates the event topic; both are idempotent.
    public static func prepare(
        topic: EventTopicConfiguration,
        postgres: PostgresClient,
        migrations: [SchemaMigrator.Migration],
        logger: Logger
    ) async throws {
        try await SchemaMigrator(client: postgres, logger: logger).migrate(migrations)
        let admin = try KafkaAdmin(
            configuration: KafkaAdminConfiguration(bootstrapServers: topic.bootstrapServers),
            logger: logger
        )
        try await admin.createTopics([KafkaTopicSpecification(name: topic.topic, partitions: topic.partitions)])
    }

    /// The projector's services: the projection loop (which runs its Kafka consumer inside it) and the
    /// re-evaluator; the consumer is returned too, for probes such as end offsets. `postgres` must run in
    /// the same group, before them.
    public static func projector(
        topic: EventTopicConfiguration,
        configuration: ProjectorConfiguration,
        postgres: PostgresClient,
        ruleSet: RuleSet,
        logger: Logger
    ) throws -> (consumer: KafkaConsumer, progress: ProjectorProgress, services: [any Service]) {
        // Read directly, the projector joins no group (its positions keep the group's name).
        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: topic.bootstrapServers,
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
        let store = ProjectionStore(client: postgres, logger: logger)
        let catalog = RiskAreaCatalog(store: store, logger: logger)
        let policy = Policy(ruleSet: ruleSet)
        let projection = Projection(
            store: store,
            catalog: catalog,
            policy: policy,
            group: configuration.group,
            now: Instant.now,
            logger: logger
        )
        let progress = ProjectorProgress()
        let service = ProjectorService(
            consumer: consumer,
            projection: projection,
            store: store,
            configuration: configuration,
            progress: progress,
            partitionCount: {
                let admin = try KafkaAdmin(
                    configuration: KafkaAdminConfiguration(bootstrapServers: topic.bootstrapServers),
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
            store: store,
            catalog: catalog,
            policy: policy,
            configuration: Reevaluator.Configuration(),
            progress: progress,
            now: Instant.now,
            logger: logger
        )
        return (consumer, progress, [service, reevaluator])
    }

    /// The projector's operational HTTP server: `/metrics`, and `/health` answering 503 when the
    /// projector is not progressing (messages wait and nothing was committed for `stallAfter`), has
    /// halted a partition whose log was replaced (`log-replaced`), holds no partition while the topic's
    /// messages wait (`no-partitions`) or its re-evaluator keeps failing (`reevaluation-failing`).
    public static func projectorOperations(
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

    /// The query API's services: the pools of its code reads (one per event loop, to `codeReadPostgres`;
    /// see ``EventLoopCodeReads``), the listener that keeps its ``CodeCache`` coherent (one more
    /// connection to `codeReadPostgres`) and its HTTP server, in that order. `postgres` serves
    /// everything else and must run in the same group, before them; `pseudonymizer` (the gateway's
    /// key) hashes the identifiers of code lookups. Reads the issuer's signing keys (creating a first
    /// one if `createSigningKey`) and the JWKS of the trusted regions. Throws
    /// ``QueryAPIConfigurationError`` for a setting out of bounds.
    public static func queryAPI(
        configuration: QueryAPIConfiguration,
        postgres: PostgresClient,
        codeReadPostgres: PostgresClient.Configuration,
        ruleSet: RuleSet,
        pseudonymizer: Pseudonymizer,
        createSigningKey: Bool = false,
        metrics: (@Sendable () -> [UInt8])?,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) async throws -> QueryAPIServices {
        try configuration.validate()
        let issuer = try await CodeIssuer(
            issuer: configuration.issuer,
            keys: try CodeSigningKey.load(
                directory: URL(fileURLWithPath: configuration.signingKeysDirectory),
                createIfMissing: createSigningKey
            ),
            lifetime: configuration.signedCodeLifetime
        )
        var trusted: [String: String] = [:]
        if let file = configuration.trustedIssuersFile { trusted = try await JWKSLocation.loadTrusted(file: file) }
        trusted[issuer.issuer] = issuer.jwks
        let store = ProjectionStore(client: postgres, logger: logger)
        let codes = CodeStore(client: postgres, logger: logger)
        let reads = EventLoopCodeReads(
            postgres: codeReadPostgres,
            eventLoops: MultiThreadedEventLoopGroup.singleton,
            readsInFlight: configuration.codeReadsInFlight,
            maximumBatch: configuration.maximumCodeReadBatch,
            logger: logger
        )
        let cache = CodeCache(entries: configuration.codeCacheEntries, maximumAge: configuration.codeCacheMaximumAge) {
            subject in
            try await reads.code(of: subject).map {
                MaterialisedCode(decision: try $0.decision(), evaluatedAt: $0.evaluatedAt)
            }
        }
        let queries = CodeQueries(
            codes: codes,
            materialised: cache,
            catalog: RiskAreaCatalog(store: store, logger: logger),
            policy: Policy(ruleSet: ruleSet),
            ruleSet: ruleSet,
            refreshInterval: configuration.designationRefreshInterval
        )
        let records = PersonRecordStore(client: postgres, logger: logger)
        let api = QueryAPI(
            queries: queries,
            explanations: PersonExplanations(queries: queries, records: records),
            records: records,
            analysts: AnalystAccess(store: AnalystStore(client: postgres, logger: logger)),
            pseudonymizer: pseudonymizer,
            issuer: issuer,
            verifier: try await SignedCodeVerifier(trusted: trusted),
            readTimeout: configuration.readTimeout
        )
        let application = QueryAPIApplication.make(
            api: api,
            configuration: configuration,
            now: Instant.now,
            metrics: metrics,
            onServerRunning: onServerRunning,
            logger: logger
        )
        let listener = CodeChangeListener(
            cache: cache,
            postgres: codeReadPostgres,
            retryDelay: configuration.codeChangeRetryDelay,
            logger: logger
        )
        return QueryAPIServices(services: [reads, listener, application], codeCache: cache)
    }

    /// What ``queryAPI(configuration:postgres:codeReadPostgres:ruleSet:pseudonymizer:createSigningKey:metrics:onServerRunning:logger:)``
    /// builds.
    public struct QueryAPIServices: Sendable {
        /// Run these in one service group, in this order.
        public var services: [any Service]
        /// The API's kept codes (their hit statistics, for benchmarks and tests).
        public var codeCache: CodeCache
    }

    /// Whether the projector group has applied every message on the topic: the positions stored in
    /// PostgreSQL equal the partitions' end offsets.
    public static func projectionCaughtUp(
        topic: EventTopicConfiguration,
        group: String,
        consumer: KafkaConsumer,
        postgres: PostgresClient,
        logger: Logger
    ) async throws -> Bool {
        let partitions = (0..<Int32(topic.partitions)).map { KafkaTopicPartition(topic: topic.topic, partition: $0) }
        let ends = try await consumer.watermarks(for: partitions)
        let stored = try await ProjectionStore(client: postgres, logger: logger)
            .positions(group: group, topic: topic.topic, partitions: partitions.map(\.partition))
        // Exactly at the end: a stored position beyond it is a replaced log (its events not applied),
        // never "caught up".
        return partitions.allSatisfy { partition in
            (stored[partition.partition] ?? 0) == (ends[partition]?.high ?? 0)
        }
    }
}

extension Backbone {
    /// Runs `body` with a short-lived PostgreSQL client (for setup steps and tools), then closes it.
    public static func withPostgres<Result: Sendable>(
        _ configuration: PostgresClient.Configuration,
        logger: Logger,
        _ body: (PostgresClient) async throws -> Result
    ) async throws -> Result {
        // The pool warns when it is used before its run loop started, which is harmless here.
        var backgroundLogger = logger
        backgroundLogger.logLevel = .error
        let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

extension Backbone {
    /// Runs `services` in one service group (no signal handling) around `body`, then shuts them down
    /// gracefully; if `body` throws, they are shut down and its error is rethrown. For tools,
    /// benchmarks and tests that need services only while they work.
    public static func withServices<Result: Sendable>(
        _ services: [any Service],
        logger: Logger,
        _ body: () async throws -> Result
    ) async throws -> Result {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [],
                logger: logger
            )
        )
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                let result = try await body()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

extension Backbone {
    /// The replay of dead letters through the projection, on `postgres` (which must be running).
    public static func deadLetterReplay(postgres: PostgresClient, ruleSet: RuleSet, logger: Logger) -> DeadLetterReplay
    {
        let store = ProjectionStore(client: postgres, logger: logger)
        let projection = Projection(
            store: store,
            catalog: RiskAreaCatalog(store: store, logger: logger),
            policy: Policy(ruleSet: ruleSet),
            group: "dead-letter-replay",
            now: Instant.now,
            logger: logger
        )
        return DeadLetterReplay(store: store, projection: projection)
    }
}

// The PostgreSQL adapter serves what the gateway declares it needs. Its failures reach the gateway
// described for logs (SQLSTATE and message, never a query's values).
extension PublisherStore: PublisherDirectory {
    public func publishers() async throws -> [PublisherRecord] {
        do { return try await all() } catch { throw RedactedError(SafeErrorDescription(error).description) }
    }
}

extension PublisherStore: RetractionTargets {}
