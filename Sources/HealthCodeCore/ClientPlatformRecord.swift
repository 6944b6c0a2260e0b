/// A registered client platform of the query API (a residents' app, a checkpoint reader): public
/// material only. The API authenticates against these records; the PostgreSQL adapter keeps them in
/// table `client_platform`.
public struct ClientPlatformRecord: Sendable, Hashable {
    /// What a platform may do.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A residents' app: may request its users' signed codes (`POST /v1/code-lookups`).
        case resident
        /// A checkpoint reader: may read a person's code with its reasons and history
        /// (`GET /v1/people/{p}/code`), every read audited.
        case checkpoint
    }

    /// The platform's id, e.g. `urn:hc:platform:gd-health-app`.
    public var id: String
    public var kind: Kind
    /// The SHA-256 (lowercase hex) of its API key.
    public var apiKeySHA256: String
    /// Its own rate limit; `nil`: the API's default for platforms.
    public var rateLimit: RequestRateLimit?
    /// When it was removed; a removed platform cannot authenticate.
    public var revokedAt: Instant?

    public init(
        id: String,
        kind: Kind,
        apiKeySHA256: String,
        rateLimit: RequestRateLimit? = nil,
        revokedAt: Instant? = nil
    ) {
        self.id = id
        self.kind = kind
        self.apiKeySHA256 = apiKeySHA256
        self.rateLimit = rateLimit
        self.revokedAt = revokedAt
    }
}

/// How many requests a client may make: a token bucket of `burst` requests refilled at
/// `requestsPerSecond` (fractions allowed: 0.1 is one request every ten seconds).
public struct RequestRateLimit: Sendable, Hashable {
    /// Sustained requests per second; more than 0.
    public var requestsPerSecond: Double
    /// Requests it may make at once after a quiet spell; at least 1.
    public var burst: Int

    public init(requestsPerSecond: Double, burst: Int) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
    }
}
