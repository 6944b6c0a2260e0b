import HealthCodeAPI
import HealthCodeConsole
import HealthCodeCore
import HealthCodeGateway
import HealthCodeInbound
import HealthCodeKafka
import HealthCodePostgres
import HealthCodeProjector
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

    /// Refuses a setting outside what the topic allows, before anything is created.
    public func validate() throws(ConfigurationError) {
        try ConfigurationError.check(
            "topic",
            [
                (!bootstrapServers.isEmpty, "bootstrapServers", "must name at least one broker"),
                (!topic.isEmpty, "topic", "must not be empty"),
                (partitions > 0, "partitions", "must be at least 1"),
            ]
        )
    }
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
        try topic.validate()
        try await SchemaMigrator(client: postgres, logger: logger).migrate(migrations)
        let admin = try KafkaAdmin(
            configuration: KafkaAdminConfiguration(bootstrapServers: topic.bootstrapServers),
            logger: logger
        )
        try await admin.createTopics([KafkaTopicSpecification(name: topic.topic, partitions: topic.partitions)])
    }

    /// Explanations read straight from PostgreSQL (`healthcode explain`, tests): codes evaluated on the stored
    /// states and archive with the rule set in force at each `knownAt` (`ruleSet` until the first activation),
    /// nothing kept in memory.
    public static func explanations(
        postgres: PostgresClient,
        ruleSet: RuleSet,
        logger: Logger
    ) -> (queries: CodeQueries, explanations: PersonExplanations) {
        let records = PersonRecordStore(client: postgres, logger: logger)
        let queries = CodeQueries(
            states: CodeStore(client: postgres, logger: logger),
            records: records,
            materialised: CodeCache(entries: 0, maximumAge: .seconds(1), reads: NoMaterialisedCodes()),
            catalog: RiskAreaCatalog(archive: ProjectionStore(client: postgres, logger: logger), logger: logger),
            rules: RuleSetCatalog(
                source: RuleSetVersionStore(client: postgres, logger: logger),
                configured: Policy(ruleSet: ruleSet),
                logger: logger
            ),
            refreshInterval: .seconds(60)
        )
        return (queries, PersonExplanations(queries: queries, records: records))
    }

    /// What an evidence bundle is judged by.
    public enum EvidenceRules: Sendable {
        /// The rule set in force at `knownAt` (the answer the API gives).
        case inForce
        /// An activated rule set by its hash or `ID@VERSION` (``CodeQueries/policy(named:)``).
        case named(String)
        /// A rule-set file: what the decision would have been under it.
        case file([UInt8])
    }

    /// An evidence bundle of `subject` at `at` as known at `knownAt` (``EvidenceBundle``), read straight from
    /// PostgreSQL: the person's whole archive, every designation, and the file of the rule set that judges
    /// (`configuredFile` decides before the first activation, as in ``explanations(postgres:ruleSet:logger:)``).
    public static func evidence(
        postgres: PostgresClient,
        configuredFile: [UInt8],
        subject: String,
        at: Instant,
        knownAt: Instant,
        rules: EvidenceRules,
        context: [(name: String, value: String)],
        logger: Logger
    ) async throws -> EvidenceBundle {
        let configured = try RuleSet.decode(configuredFile)
        let queries = explanations(postgres: postgres, ruleSet: configured, logger: logger).queries
        let file: [UInt8]
        switch rules {
        case .file(let bytes):
            file = bytes
        case .inForce, .named:
            let policy: Policy
            if case .named(let name) = rules {
                guard let named = try await queries.policy(named: name) else {
                    throw EvidenceError(code: "unknown-rule-set", detail: "no activated rule set is named \(name)")
                }
                policy = named
            } else {
                policy = try await queries.policy(knownAt: knownAt)
            }
            let hash = policy.ruleSet.contentHash
            if let stored = try await RuleSetVersionStore(client: postgres, logger: logger).body(ofHash: hash) {
                file = stored
            } else if hash == configured.contentHash {
                file = configuredFile
            } else {
                throw EvidenceError(code: "rule-set-file-missing", detail: "the file of rule set \(hash) is not stored")
            }
        }
        let events = try await PersonRecordStore(client: postgres, logger: logger)
            .events(of: subject, relevantFrom: nil).map(\.event)
        var areaEvents: [CloudEvent] = []
        for row in try await ProjectionStore(client: postgres, logger: logger).areaEvents(after: 0) {
            do {
                areaEvents.append(try EventDecoder.decode(Array(row.body.utf8)))
            } catch {
                // Left out as the query API's designations leave it out (RiskAreaCatalog), so both agree.
                logger.error("archived area event no longer decodes", metadata: ["sequence": "\(row.sequence)"])
            }
        }
        return try EvidenceBundle(
            subject: subject,
            at: at,
            knownAt: knownAt,
            context: context,
            ruleSetFile: file,
            events: events,
            areaEvents: areaEvents
        )
    }

    /// The query API's services on PostgreSQL: the pools of its code reads (one per event loop, to
    /// `codeReadPostgres`; see ``EventLoopCodeReads``), the listener that keeps its ``CodeCache``
    /// coherent (one more connection to `codeReadPostgres`) and its HTTP server, in that order.
    /// `postgres` serves everything else and must run in the same group, before them. See
    /// ``QueryAPIServer/build(configuration:stores:ruleSet:pseudonymizer:createSigningKey:now:metrics:additionalRoutes:onServerRunning:logger:)``.
    public static func queryAPI(
        configuration: QueryAPIConfiguration,
        postgres: PostgresClient,
        codeReadPostgres: PostgresClient.Configuration,
        ruleSet: RuleSet,
        pseudonymizer: Pseudonymizer,
        createSigningKey: Bool = false,
        metrics: (@Sendable () -> [UInt8])?,
        console: ConsoleSettings? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) async throws -> QueryAPIServices {
        try configuration.validate()  // before its settings size the read pools
        if let problem = console?.configuration.problems.first {
            throw ConsoleConfigurationError(setting: problem.setting, requirement: problem.requirement)
        }
        let reads = EventLoopCodeReads(
            postgres: codeReadPostgres,
            eventLoops: MultiThreadedEventLoopGroup.singleton,
            readsInFlight: configuration.codeReadsInFlight,
            maximumBatch: configuration.maximumCodeReadBatch,
            logger: logger
        )
        let server = try await QueryAPIServer.build(
            configuration: configuration,
            stores: QueryAPIStores(
                codes: reads,
                states: CodeStore(client: postgres, logger: logger),
                records: PersonRecordStore(client: postgres, logger: logger),
                analysts: AuditedAnalysts(store: AnalystStore(client: postgres, logger: logger)),
                platforms: ClientPlatformStore(client: postgres, logger: logger),
                areaEvents: ProjectionStore(client: postgres, logger: logger),
                ruleSets: RuleSetVersionStore(client: postgres, logger: logger)
            ),
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            createSigningKey: createSigningKey,
            metrics: metrics,
            additionalRoutes: console.flatMap { console in
                guard console.configuration.enabled else { return nil }
                return { api, router in
                    Console(
                        api: api,
                        operations: ConsoleOperationsStore(
                            postgres: postgres,
                            configuredFile: console.ruleSetFile,
                            logger: logger
                        ),
                        configuration: console.configuration,
                        logger: logger
                    ).addRoutes(to: router)
                }
            },
            onServerRunning: onServerRunning,
            logger: logger
        )
        let listener = CodeChangeListener(
            observer: server.codeCache,
            postgres: codeReadPostgres,
            retryDelay: configuration.codeChangeRetryDelay,
            logger: logger
        )
        return QueryAPIServices(services: [reads, listener, server.application], codeCache: server.codeCache)
    }

    /// The web console the query API serves beside its routes (``HealthCodeConsole/Console``).
    public struct ConsoleSettings: Sendable {
        public var configuration: ConsoleConfiguration
        /// The configured rule set's file, byte for byte: evidence bundles carry it.
        public var ruleSetFile: [UInt8]

        public init(configuration: ConsoleConfiguration, ruleSetFile: [UInt8]) {
            self.configuration = configuration
            self.ruleSetFile = ruleSetFile
        }
    }

    /// A console setting out of bounds.
    public struct ConsoleConfigurationError: Error, CustomStringConvertible {
        public var setting: String
        public var requirement: String
        public var description: String { "console setting \(setting) \(requirement)" }
    }

    /// What ``queryAPI(configuration:postgres:codeReadPostgres:ruleSet:pseudonymizer:createSigningKey:metrics:console:onServerRunning:logger:)``
    /// builds.
    public struct QueryAPIServices: Sendable {
        /// Run these in one service group, in this order.
        public var services: [any Service]
        /// The API's kept codes (their hit statistics, for benchmarks and tests).
        public var codeCache: CodeCache
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

// The PostgreSQL adapter serves what the services declare they need. Its failures reach them described
// for logs (SQLSTATE and the server's message, never a query's values); cancellation passes unchanged.
func redactingErrors<Result>(_ body: () async throws -> Result) async throws -> Result {
    do {
        return try await body()
    } catch let error as CancellationError {
        throw error
    } catch {
        throw RedactedError(SafeErrorDescription(error).description)
    }
}

extension PublisherStore: PublisherDirectory {
    public func publishers() async throws -> [PublisherRecord] { try await redactingErrors { try await all() } }
}

extension PublisherStore: RetractionTargets {}

extension ProjectionStore: ProjectionStorage {
    public func withProjectionTransaction<Result: Sendable>(
        _ body: (any ProjectionTransaction) async throws -> Result
    ) async throws -> Result {
        try await redactingErrors { try await withTransaction { try await body($0) } }
    }
}

extension PostgresProjectionTransaction: ProjectionTransaction {}

extension EventLoopCodeReads: MaterialisedCodeReads {
    public func materialisedCode(of subject: String) async throws -> MaterialisedCode? {
        try await redactingErrors { try await code(of: subject) }.map {
            MaterialisedCode(decision: try $0.decision(), evaluatedAt: $0.evaluatedAt)
        }
    }
}

extension CodeStore: PersonStates {
    public func personState(of subject: String) async throws -> PersonState? {
        try await redactingErrors { try await state(of: subject) }
    }
}

extension PersonRecordStore: PersonRecords {
    public func archivedEvents(
        of subject: String,
        relevantFrom cutoff: Instant,
        through end: Instant?
    ) async throws -> [ArchivedPersonEvent] {
        try await redactingErrors { try await events(of: subject, relevantFrom: cutoff, through: end) }
    }

    public func timeline(
        of subject: String,
        at: Instant,
        before page: ExplanationPage?,
        limit: Int
    ) async throws -> (events: [TimelineEntry], earlier: Bool) {
        let (rows, earlier) = try await redactingErrors {
            try await timeline(of: subject, at: at, before: page.map { ($0.time, $0.id, $0.source) }, limit: limit)
        }
        let events = rows.map {
            TimelineEntry(source: $0.source, id: $0.id, type: $0.type, time: $0.time, recordedTime: $0.recorded)
        }
        return (events, earlier)
    }

    public func subjectAccessExport(of subject: String) async throws -> [(table: String, rowsJSON: String)] {
        try await redactingErrors { try await export(of: subject) }
    }
}

extension AnalystStore: AnalystDirectory {
    public func analystID(apiKeySHA256: String) async throws -> String? {
        try await redactingErrors { try await analyst(apiKeySHA256: apiKeySHA256) }
    }

    public func recordRead(by reader: Reader, purpose: String, subject: String, endpoint: String) async throws {
        try await redactingErrors {
            switch reader {
            case .analyst(let analyst):
                try await record(analyst: analyst, purpose: purpose, subject: subject, endpoint: endpoint)
            case .platform(let platform):
                try await record(
                    analyst: nil,
                    platform: platform,
                    purpose: purpose,
                    subject: subject,
                    endpoint: endpoint
                )
            }
        }
    }
}

extension ReviewOfficeStore: ReviewOffices {
    public func unpublishedApprovals() async throws -> [HeldReview] {
        try await redactingErrors { try await unpublished() }
    }

    public func decisions(after decisionID: Int64) async throws -> [ReviewDecision] {
        try await redactingErrors { try await auditedDecisions(after: decisionID) }.map {
            ReviewDecision(id: $0.auditID, office: $0.office, officer: $0.officer, approved: $0.decision == "approved")
        }
    }

    public func latestDecisionID() async throws -> Int64 { try await redactingErrors { try await latestAuditID() } }
}

extension AssertionUseStore: AssertionUses {}

extension GatewayStores {
    /// The gateway's stores on PostgreSQL (tables `publisher`, `event_archive`, the review tables,
    /// `client_assertion_use` and `held_change`); designations are measured on the projection under the rule
    /// set in force (`ruleSet` before the first activation) with `configuration`'s threshold and budget.
    public static func postgres(
        _ client: PostgresClient,
        configuration: GatewayConfiguration,
        ruleSet: RuleSet,
        logger: Logger
    ) -> GatewayStores {
        let publishers = PublisherStore(client: client, logger: logger)
        return GatewayStores(
            publishers: publishers,
            retractionTargets: publishers,
            reviewOffices: ReviewOfficeStore(client: client, logger: logger),
            assertionUses: AssertionUseStore(client: client, logger: logger),
            designations: DesignationImpactOversight(
                postgres: client,
                configured: ruleSet,
                holdOver: configuration.designationHoldOver,
                budget: configuration.designationImpactBudget,
                logger: logger
            ),
            heldDesignations: HeldChangeStore(client: client, logger: logger)
        )
    }
}

/// The analysts and the audit trail on PostgreSQL, with concurrent reads' audit rows written together
/// (``AuditBatches``): the API's port in production.
struct AuditedAnalysts: AnalystDirectory {
    let store: AnalystStore
    let batches: AuditBatches

    init(store: AnalystStore) {
        self.store = store
        self.batches = AuditBatches { records in try await store.record(records) }
    }

    func analystID(apiKeySHA256: String) async throws -> String? {
        try await redactingErrors { try await store.analyst(apiKeySHA256: apiKeySHA256) }
    }

    func recordRead(by reader: Reader, purpose: String, subject: String, endpoint: String) async throws {
        let record = AuditRecord(reader: reader, purpose: purpose, subject: subject, endpoint: endpoint)
        try await redactingErrors { try await batches.record(record) }
    }
}

extension AuditRecord {
    /// The audit row of a read by `reader`.
    public init(reader: Reader, purpose: String, subject: String, endpoint: String) {
        switch reader {
        case .analyst(let analyst):
            self.init(analyst: analyst, platform: nil, purpose: purpose, subject: subject, endpoint: endpoint)
        case .platform(let platform):
            self.init(analyst: nil, platform: platform, purpose: purpose, subject: subject, endpoint: endpoint)
        }
    }
}

extension ClientPlatformStore: ClientPlatformDirectory {
    public func clientPlatforms() async throws -> [ClientPlatformRecord] {
        try await redactingErrors { try await all() }
    }
}

extension Backbone {
    /// Registers a client platform with a new API key and returns the key (only its SHA-256 is stored).
    /// With `replacing`, a platform of that id is registered again (its earlier key stops working: the
    /// demo and benchmarks); without, an id already taken is refused (`healthcode platforms add`).
    public static func registerPlatform(
        id: String,
        kind: ClientPlatformRecord.Kind,
        rateLimit: RequestRateLimit?,
        replacing: Bool = false,
        postgres: PostgresClient,
        logger: Logger
    ) async throws -> String {
        let key = ClientPlatformRegistry.generateKey()
        let record = ClientPlatformRecord(
            id: id,
            kind: kind,
            apiKeySHA256: ClientPlatformRegistry.hash(key),
            rateLimit: rateLimit
        )
        let store = ClientPlatformStore(client: postgres, logger: logger)
        if replacing { try await store.upsert(record) } else { try await store.add(record) }
        return key
    }
}

/// No materialised code: every answer is evaluated from the stored state and archive.
private struct NoMaterialisedCodes: MaterialisedCodeReads {
    func materialisedCode(of subject: String) async throws -> MaterialisedCode? { nil }
}

/// Why an evidence bundle could not be made: `code` for scripts, `detail` for people (no event contents).
public struct EvidenceError: Error, CustomStringConvertible {
    public var code: String
    public var detail: String
    public var description: String { "\(code): \(detail)" }
}

extension InboundCheckpointStore: InboundCheckpoints {
    public func checkpoints(of topics: [String]) async throws -> [KafkaTopicPartition: InboundCheckpoint] {
        var result: [KafkaTopicPartition: InboundCheckpoint] = [:]
        for row in try await rows(of: topics) {
            result[KafkaTopicPartition(topic: row.topic, partition: row.partition)] = InboundCheckpoint(
                nextOffset: row.nextOffset,
                outputEnds: row.outputEnds
            )
        }
        return result
    }

    public func save(_ checkpoints: [KafkaTopicPartition: InboundCheckpoint]) async throws {
        try await save(
            checkpoints.sorted { $0.key < $1.key }.map {
                Row(
                    topic: $0.key.topic,
                    partition: $0.key.partition,
                    nextOffset: $0.value.nextOffset,
                    outputEnds: $0.value.outputEnds
                )
            }
        )
    }
}
