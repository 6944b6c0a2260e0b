/// A registered publisher: public material only, never a secret. The gateway authenticates
/// against these records; the PostgreSQL adapter keeps them in table `publisher`.
public struct PublisherRecord: Sendable, Hashable {
    /// How a publisher proves who it is.
    public enum Credential: Sendable, Hashable {
        /// An ES256 public key (PEM) that verifies the publisher's JWT client assertions.
        case es256PublicKey(pem: String)
        /// The SHA-256 (lowercase hex) of the publisher's API key.
        case apiKeyHash(sha256Hex: String)
    }

    /// The publisher's id: the CloudEvents `source` of every event it publishes.
    public var id: String
    public var credential: Credential
    /// The event types it may publish.
    public var eventTypes: [String]
    /// Its own rate limit; `nil`: the gateway's default.
    public var rateLimit: PublisherRateLimit?
    /// When it was revoked; a revoked publisher cannot authenticate.
    public var revokedAt: Instant?

    public init(
        id: String,
        credential: Credential,
        eventTypes: [String],
        rateLimit: PublisherRateLimit? = nil,
        revokedAt: Instant? = nil
    ) {
        self.id = id
        self.credential = credential
        self.eventTypes = eventTypes
        self.rateLimit = rateLimit
        self.revokedAt = revokedAt
    }
}

/// How many events a publisher may send: a token bucket of `burstEvents` refilled at `eventsPerSecond`.
public struct PublisherRateLimit: Sendable, Hashable {
    /// Sustained events per second.
    public var eventsPerSecond: Int
    /// Events it may send at once after a quiet spell (at least one full batch).
    public var burstEvents: Int

    public init(eventsPerSecond: Int, burstEvents: Int) {
        self.eventsPerSecond = eventsPerSecond
        self.burstEvents = burstEvents
    }
}

/// Why a registry change was refused. The description names the problem, never a credential.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    /// A stable code: `already-registered` or `not-found`.
    public var code: String
    /// What was looked up (an id, never a key).
    public var context: String

    public init(code: String, context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "\(code): \(context)" }
}
