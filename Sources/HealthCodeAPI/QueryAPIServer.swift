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
            onServerRunning: onServerRunning,
            logger: logger
        )
        return QueryAPIServer(application: application, codeCache: cache)
    }

    /// What ``build(configuration:stores:ruleSet:pseudonymizer:createSigningKey:now:metrics:onServerRunning:logger:)``
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
            lifetime: configuration.signedCodeLifetime
        )
        var trusted: [String: String] = [:]
        if let file = configuration.trustedIssuersFile { trusted = try await JWKSLocation.loadTrusted(file: file) }
        trusted[issuer.issuer] = issuer.jwks
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
            policy: Policy(ruleSet: ruleSet),
            ruleSet: ruleSet,
            refreshInterval: configuration.designationRefreshInterval
        )
        let api = QueryAPI(
            queries: queries,
            explanations: PersonExplanations(queries: queries, records: stores.records),
            records: stores.records,
            analysts: AnalystAccess(directory: stores.analysts),
            pseudonymizer: pseudonymizer,
            issuer: issuer,
            verifier: try await SignedCodeVerifier(trusted: trusted),
            readTimeout: configuration.readTimeout
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
    /// The archive of area events the designations are read from.
    public var areaEvents: any AreaEventArchive

    public init(
        codes: any MaterialisedCodeReads,
        states: any PersonStates,
        records: any PersonRecords,
        analysts: any AnalystDirectory,
        areaEvents: any AreaEventArchive
    ) {
        self.codes = codes
        self.states = states
        self.records = records
        self.analysts = analysts
        self.areaEvents = areaEvents
    }
}
