/// Settings of the query API.
public struct QueryAPIConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on. Default 8081.
    public var port: Int = 8081
    /// How long designations read from PostgreSQL are reused before re-reading. Default 1 s.
    public var designationRefreshInterval: Duration = .seconds(1)
    /// This region's issuer id in signed codes (`iss`). Default `urn:hc:issuer:local`.
    public var issuer: String = "urn:hc:issuer:local"
    /// Directory of the issuer's ES256 private keys, one `<kid>.pem` each; the last by name signs,
    /// all are published. Default `.local/code-signing-keys`.
    public var signingKeysDirectory: String = ".local/code-signing-keys"
    /// Longest validity of a signed code (shorter if the code itself ends sooner). Default 5 minutes.
    public var signedCodeLifetime: Duration = .seconds(300)
    /// A JSON file `{"<issuer>": "<JWKS URL or file>"}` of other regions whose signed codes this
    /// instance accepts (mutual recognition); `nil`: only its own. Default `nil`.
    public var trustedIssuersFile: String?

    /// Reads of materialised codes that each event loop runs at once before its further lookups queue
    /// and share one read (``EventLoopCodeReads``, ``CodeReadBatches``); each loop's pool has as many
    /// connections. Default 1: with one read per loop in flight PostgreSQL stays busy, and under load
    /// each read serves several lookups (`bench lookup` measured 2 per loop slower).
    public var codeReadsInFlight: Int = 1
    /// Most lookups one read of materialised codes serves. Default 64.
    public var maximumCodeReadBatch: Int = 64
    /// Most materialised codes kept in memory (``CodeCache``); 0 keeps none and every lookup reads
    /// PostgreSQL. Default 200 000 (roughly 0.5–1 kB each, by the number of reasons).
    public var codeCacheEntries: Int = 200_000
    /// Longest a kept code answers lookups before it is read again, whatever was announced: the bound
    /// on what an unannounced change (an UPDATE by hand) leaves behind. Default 30 s.
    public var codeCacheMaximumAge: Duration = .seconds(30)
    /// Wait before listening for code changes again after losing the connection; meanwhile lookups
    /// read PostgreSQL. Default 1 s.
    public var codeChangeRetryDelay: Duration = .seconds(1)
    /// Longest a request waits on PostgreSQL before it is answered 503 `database-unavailable` with
    /// `Retry-After` (a database stopped, unreachable or overloaded). Default 2 s.
    public var readTimeout: Duration = .seconds(2)

    /// The local defaults.
    public init() {}

    /// Checks the settings that have a lower bound, so that a bad value is refused before anything
    /// starts (a negative cache size would otherwise only fail deep inside the cache).
    public func validate() throws(QueryAPIConfigurationError) {
        let checks: [(holds: Bool, setting: QueryAPIConfigurationError.Setting, requirement: String)] = [
            ((0...65_535).contains(port), .port, "must be between 0 and 65535"),
            (signedCodeLifetime > .zero, .signedCodeLifetime, "must be at least 1 second"),
            (codeReadsInFlight > 0, .codeReadsInFlight, "must be at least 1"),
            (maximumCodeReadBatch > 0, .maximumCodeReadBatch, "must be at least 1"),
            (codeCacheEntries >= 0, .codeCacheEntries, "must not be negative"),
            (codeCacheMaximumAge > .zero, .codeCacheMaximumAge, "must be at least 1 second"),
            (readTimeout > .zero, .readTimeout, "must be more than 0"),
        ]
        for check in checks where !check.holds {
            throw QueryAPIConfigurationError(setting: check.setting, requirement: check.requirement)
        }
    }
}

/// A query API setting outside what it allows.
public struct QueryAPIConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The settings ``QueryAPIConfiguration/validate()`` checks.
    public enum Setting: String, Sendable, Hashable, CaseIterable {
        case port
        case signedCodeLifetime
        case codeReadsInFlight
        case maximumCodeReadBatch
        case codeCacheEntries
        case codeCacheMaximumAge
        case readTimeout
    }

    /// Which setting is wrong.
    public var setting: Setting
    /// What it must be, e.g. "must not be negative".
    public var requirement: String

    public var description: String { "query API setting \(setting.rawValue) \(requirement)" }
}
