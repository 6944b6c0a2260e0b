import HealthCodeCore
import HealthCodeHTTP

/// Whether a person nothing is recorded about gets a code.
public enum UnknownPeople: String, Sendable, Hashable, CaseIterable {
    /// No code: lookups and reads answer 404 `unknown-person` (an identifier nobody published about
    /// may be mistyped or made up, and a signed green code for it would be a forgery on demand).
    case refuse
    /// The policy's code for an empty history (green under the reference rules).
    case green
}

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
    /// A JSON file `{"<issuer>": "<JWKS https URL or file>"}` of other regions whose signed codes this
    /// instance accepts (mutual recognition); plain http is refused except to this machine. `nil`: only
    /// its own. Default `nil`.
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
    /// How long a client may stay silent on a connection and take to send a body (408 beyond it). Defaults
    /// 30 s each.
    public var timeouts = HTTPTimeouts()

    /// How often the trusted issuers' key sets are fetched again. Default 5 minutes.
    public var trustedKeysRefreshInterval: Duration = .seconds(300)
    /// How soon a trusted issuer whose keys could not be fetched is asked again. Default 10 s.
    public var trustedKeysRetryDelay: Duration = .seconds(10)
    /// Longest one fetch of a trusted issuer's keys may take. Default 5 s.
    public var trustedKeysFetchTimeout: Duration = .seconds(5)

    /// PBKDF2 iterations of the holder binding's stretching (``HolderBindingClaim``): what a thief of a
    /// token pays per guessed identifier, what a checkpoint pays per check, and what the first code of a
    /// person each day costs the issuer (about 40 ms of one core here). Default 100 000.
    public var holderBindingIterations: Int = 100_000
    /// Stretched holder keys kept for the day (``HolderKeyCache``), so that a person's later codes that
    /// day cost an HMAC instead of the stretching; roughly 150 bytes each. Default 100 000; 0 keeps none.
    public var holderKeyCacheEntries: Int = 100_000
    /// Fewest holder-binding iterations a verified code may carry (`weak-holder-binding` below).
    /// Default 50 000.
    public var minimumHolderBindingIterations: Int = 50_000
    /// Most holder-binding iterations this API computes for one verification (bounded work; more is
    /// `malformed`). Default 1 000 000.
    public var maximumHolderBindingIterations: Int = 1_000_000
    /// Whether `POST /v1/code-verifications` requires the holder's document identifier (`holder`);
    /// without it a copied token would pass. Default true.
    public var verificationRequiresHolder: Bool = true
    /// Holder checks (`POST /v1/code-verifications` with `holder`) computed at once; more are refused
    /// with 503 `busy` and `Retry-After` (each costs tens of milliseconds of a core). Default 8.
    public var maximumConcurrentHolderChecks: Int = 8

    /// How often the registered client platforms are read again (a removal takes effect within it).
    /// Default 5 s.
    public var platformRefreshInterval: Duration = .seconds(5)
    /// The rate limit of a client platform registered without its own. Default 20 requests/s, burst 40.
    public var platformRateLimit = RequestRateLimit(requestsPerSecond: 20, burst: 40)
    /// The rate limit of requests about one person (lookups and reads, whoever asks). Default one every
    /// 10 s, burst 10.
    public var personRateLimit = RequestRateLimit(requestsPerSecond: 0.1, burst: 10)
    /// Whether a person nothing is recorded about gets a code. Default ``UnknownPeople/refuse``.
    public var unknownPeople: UnknownPeople = .refuse

    /// The holder-binding settings as one value.
    public var holderBinding: HolderBindingLimits {
        HolderBindingLimits(
            iterations: holderBindingIterations,
            minimumIterations: minimumHolderBindingIterations,
            maximumIterations: maximumHolderBindingIterations
        )
    }

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
            (trustedKeysRefreshInterval >= .seconds(1), .trustedKeysRefreshInterval, "must be at least 1 second"),
            (trustedKeysRetryDelay >= .seconds(1), .trustedKeysRetryDelay, "must be at least 1 second"),
            (trustedKeysFetchTimeout > .zero, .trustedKeysFetchTimeout, "must be more than 0"),
            (
                (1...10_000_000).contains(holderBindingIterations), .holderBindingIterations,
                "must be between 1 and 10000000"
            ),
            (
                minimumHolderBindingIterations >= 1 && minimumHolderBindingIterations <= holderBindingIterations,
                .minimumHolderBindingIterations, "must be between 1 and holderBindingIterations"
            ),
            (
                maximumHolderBindingIterations >= holderBindingIterations
                    && maximumHolderBindingIterations <= 10_000_000,
                .maximumHolderBindingIterations, "must be between holderBindingIterations and 10000000"
            ),
            (maximumConcurrentHolderChecks >= 1, .maximumConcurrentHolderChecks, "must be at least 1"),
            (platformRefreshInterval >= .milliseconds(100), .platformRefreshInterval, "must be at least 100 ms"),
            (
                platformRateLimit.requestsPerSecond > 0 && platformRateLimit.burst >= 1, .platformRateLimit,
                "must have a rate above 0 and a burst of at least 1"
            ),
            (
                personRateLimit.requestsPerSecond > 0 && personRateLimit.burst >= 1, .personRateLimit,
                "must have a rate above 0 and a burst of at least 1"
            ),
            (holderKeyCacheEntries >= 0, .holderKeyCacheEntries, "must not be negative"),
            (timeouts.idleTimeout > .zero, .idleTimeout, "must be more than 0"),
            (timeouts.bodyReadTimeout > .zero, .bodyReadTimeout, "must be more than 0"),
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
        case trustedKeysRefreshInterval
        case trustedKeysRetryDelay
        case trustedKeysFetchTimeout
        case holderBindingIterations
        case minimumHolderBindingIterations
        case maximumHolderBindingIterations
        case maximumConcurrentHolderChecks
        case platformRefreshInterval
        case platformRateLimit
        case personRateLimit
        case holderKeyCacheEntries
        case idleTimeout
        case bodyReadTimeout
    }

    /// Which setting is wrong.
    public var setting: Setting
    /// What it must be, e.g. "must not be negative".
    public var requirement: String

    public var description: String { "query API setting \(setting.rawValue) \(requirement)" }
}
