import Foundation
import HealthCodeCore
import Logging
import ServiceLifecycle

/// The query API's one entry point: its HTTP server and code cache assembled from its configuration and
/// from what it declares it needs (``MaterialisedCodeReads``, ``PersonStates``, ``PersonRecords``,
/// ``AnalystDirectory`` and the archive of area events). Nothing starts until ``application`` runs in a
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
        codes: any MaterialisedCodeReads,
        states: any PersonStates,
        records: any PersonRecords,
        analysts: any AnalystDirectory,
        areaEvents: any AreaEventArchive,
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
            codes: codes,
            states: states,
            records: records,
            analysts: analysts,
            areaEvents: areaEvents,
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

    /// What ``build(configuration:codes:states:records:analysts:areaEvents:ruleSet:pseudonymizer:createSigningKey:now:metrics:onServerRunning:logger:)``
    /// serves, without the server: for the router (``QueryAPIApplication/router(api:now:metrics:)``).
    public static func assemble(
        configuration: QueryAPIConfiguration,
        codes: any MaterialisedCodeReads,
        states: any PersonStates,
        records: any PersonRecords,
        analysts: any AnalystDirectory,
        areaEvents: any AreaEventArchive,
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
            reads: codes
        )
        let queries = CodeQueries(
            states: states,
            materialised: cache,
            catalog: RiskAreaCatalog(archive: areaEvents, logger: logger),
            policy: Policy(ruleSet: ruleSet),
            ruleSet: ruleSet,
            refreshInterval: configuration.designationRefreshInterval
        )
        let api = QueryAPI(
            queries: queries,
            explanations: PersonExplanations(queries: queries, records: records),
            records: records,
            analysts: AnalystAccess(directory: analysts),
            pseudonymizer: pseudonymizer,
            issuer: issuer,
            verifier: try await SignedCodeVerifier(trusted: trusted),
            readTimeout: configuration.readTimeout
        )
        return (api, cache)
    }
}
