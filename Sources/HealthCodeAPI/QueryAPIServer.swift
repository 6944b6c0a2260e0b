import Foundation
import HealthCodeCore
import Logging
import ServiceLifecycle

/// The query API's one entry point: its HTTP server and code cache assembled from its configuration and
/// from what it declares it needs (``QueryAPIStores``). Nothing starts until ``application`` runs in a
/// `ServiceGroup`, after whatever serves those.
public struct QueryAPIServer: Sendable {
    /// The HTTP server.
    public let application: any Service
    /// The API's kept codes: whoever hears announced code changes tells it (``CodeChangeObserver``);
    /// its hit statistics are for benchmarks and tests.
    public let codeCache: CodeCache

    /// Reads the issuer's signing keys (creating a first one if `createSigningKey`) and the JWKS of the
    /// trusted regions, and assembles the API; throws ``QueryAPIConfigurationError`` for a setting out
    /// of bounds. `pseudonymizer` (the gateway's key) hashes the identifiers of code lookups.
    public static func build(
        configuration: QueryAPIConfiguration,
        stores: QueryAPIStores,
        ruleSet: RuleSet,
        pseudonymizer: Pseudonymizer,
        createSigningKey: Bool = false,
        now: @escaping @Sendable () -> Instant = Instant.now,
        metrics: (@Sendable () -> [UInt8])? = nil,
        additionalRoutes: QueryAPIApplication.AdditionalRoutes? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) async throws -> QueryAPIServer {
        let (api, cache) = try await assemble(
            configuration: configuration,
            stores: stores,
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            createSigningKey: createSigningKey,
            logger: logger
        )
        let application = QueryAPIApplication.make(
            api: api,
            configuration: configuration,
            now: now,
            metrics: metrics,
            additionalRoutes: additionalRoutes,
            onServerRunning: onServerRunning,
            logger: logger
        )
        let refresher = TrustedKeyRefresher(
            locations: api.trustedLocations,
            keySets: api.verifier.keySets,
            interval: configuration.trustedKeysRefreshInterval,
            retryDelay: configuration.trustedKeysRetryDelay,
            fetchTimeout: configuration.trustedKeysFetchTimeout,
            logger: logger
        )
        return QueryAPIServer(
            application: BackgroundRefreshes(
                server: application,
                platforms: api.platforms,
                trustedKeys: refresher,
                firstReadTimeout: configuration.readTimeout,
                logger: logger
            ),
            codeCache: cache
        )
    }

    /// What ``build(configuration:stores:ruleSet:pseudonymizer:createSigningKey:now:metrics:additionalRoutes:onServerRunning:logger:)``
    /// serves, without the server: for the router (``QueryAPIApplication/router(api:now:metrics:)``).
    public static func assemble(
        configuration: QueryAPIConfiguration,
        stores: QueryAPIStores,
        ruleSet: RuleSet,
        pseudonymizer: Pseudonymizer,
        createSigningKey: Bool = false,
        logger: Logger
    ) async throws -> (api: QueryAPI, codeCache: CodeCache) {
        try configuration.validate()
        let issuer = try await CodeIssuer(
            issuer: configuration.issuer,
            keys: try CodeSigningKey.load(
                directory: URL(fileURLWithPath: configuration.signingKeysDirectory),
                createIfMissing: createSigningKey
            ),
            lifetime: configuration.signedCodeLifetime,
            bindingIterations: configuration.holderBindingIterations,
            holderKeyCacheEntries: configuration.holderKeyCacheEntries
        )
        var locations: [String: JWKSLocation] = [:]
        if let file = configuration.trustedIssuersFile { locations = try JWKSLocation.trustFile(file) }
        locations[issuer.issuer] = nil
        let keySets = TrustedKeySets(issuers: Array(locations.keys) + [issuer.issuer])
        try await keySets.install(jwks: issuer.jwks, for: issuer.issuer)
        // Files are read now; regions behind a URL are fetched when the server runs, so none of them
        // holds up start-up (their codes answer keys-unavailable until then).
        await TrustedKeyRefresher(
            locations: locations.filter { if case .file = $0.value { true } else { false } },
            keySets: keySets,
            interval: configuration.trustedKeysRefreshInterval,
            retryDelay: configuration.trustedKeysRetryDelay,
            fetchTimeout: configuration.trustedKeysFetchTimeout,
            logger: logger
        ).refreshAll()
        let platforms = ClientPlatformRegistry(
            directory: stores.platforms,
            refreshInterval: configuration.platformRefreshInterval,
            logger: logger
        )
        let cache = CodeCache(
            entries: configuration.codeCacheEntries,
            maximumAge: configuration.codeCacheMaximumAge,
            reads: stores.codes
        )
        let queries = CodeQueries(
            states: stores.states,
            records: stores.records,
            materialised: cache,
            catalog: RiskAreaCatalog(archive: stores.areaEvents, logger: logger),
            rules: RuleSetCatalog(source: stores.ruleSets, configured: Policy(ruleSet: ruleSet), logger: logger),
            refreshInterval: configuration.designationRefreshInterval
        )
        let api = QueryAPI(
            queries: queries,
            explanations: PersonExplanations(queries: queries, records: stores.records),
            records: stores.records,
            analysts: AnalystAccess(directory: stores.analysts),
            pseudonymizer: pseudonymizer,
            issuer: issuer,
            verifier: SignedCodeVerifier(keySets: keySets, limits: configuration.holderBinding),
            trustedLocations: locations,
            platforms: platforms,
            throttle: RequestThrottle(
                platformDefault: configuration.platformRateLimit,
                perPerson: configuration.personRateLimit
            ),
            unknownPeople: configuration.unknownPeople,
            verificationRequiresHolder: configuration.verificationRequiresHolder,
            maximumConcurrentHolderChecks: configuration.maximumConcurrentHolderChecks,
            readTimeout: configuration.readTimeout,
            bodyReadTimeout: configuration.timeouts.bodyReadTimeout
        )
        return (api, cache)
    }
}

/// What the query API reads, by the ports it declares: PostgreSQL's stores in production,
/// in-memory ones in tests.
public struct QueryAPIStores: Sendable {
    public var codes: any MaterialisedCodeReads
    public var states: any PersonStates
    public var records: any PersonRecords
    public var analysts: any AnalystDirectory
    /// The registered client platforms.
    public var platforms: any ClientPlatformDirectory
    /// The archive of area events the designations are read from.
    public var areaEvents: any AreaEventArchive
    /// The rule-set activations (the configured rule set decides until the first).
    public var ruleSets: any RuleSetActivations

    public init(
        codes: any MaterialisedCodeReads,
        states: any PersonStates,
        records: any PersonRecords,
        analysts: any AnalystDirectory,
        platforms: any ClientPlatformDirectory,
        areaEvents: any AreaEventArchive,
        ruleSets: any RuleSetActivations
    ) {
        self.codes = codes
        self.states = states
        self.records = records
        self.analysts = analysts
        self.platforms = platforms
        self.areaEvents = areaEvents
        self.ruleSets = ruleSets
    }
}

/// The HTTP server with what keeps its credentials current (client platforms, trusted issuers' keys)
/// running beside it; they end with it. The platforms are read once before the server starts (for at
/// most `firstReadTimeout`: a database that does not answer does not hold the server back; until they
/// are read, platform keys are refused).
struct BackgroundRefreshes: Service {
    let server: any Service
    let platforms: ClientPlatformRegistry
    let trustedKeys: TrustedKeyRefresher
    let firstReadTimeout: Duration
    let logger: Logger

    func run() async throws {
        do {
            try await TransactionDeadline.run(work: "client platforms", timeout: firstReadTimeout) {
                try await platforms.refresh()
            }
        } catch {
            logger.warning("client platforms not read at start; read again in the background")
        }
        // The refreshes end on their own at a graceful shutdown; the server is awaited, never cancelled
        // by their ending (it drains its connections), and they are cancelled once it returns.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await platforms.run() }
            group.addTask { try await trustedKeys.run() }
            defer { group.cancelAll() }
            try await server.run()
        }
    }
}
