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
    /// Its inbound Kafka topic (``InboundTopic``), when it publishes to Kafka too; `nil`: HTTP only.
    public var inboundTopic: String?

    public init(
        id: String,
        credential: Credential,
        eventTypes: [String],
        rateLimit: PublisherRateLimit? = nil,
        revokedAt: Instant? = nil,
        inboundTopic: String? = nil
    ) {
        self.id = id
        self.credential = credential
        self.eventTypes = eventTypes
        self.rateLimit = rateLimit
        self.revokedAt = revokedAt
        self.inboundTopic = inboundTopic
    }
}

/// The Kafka topics of a publisher that produces to Kafka: its inbound topic, which only it writes and the
/// ingest processor reads, and its rejects topic, where the processor tells it what it refused and why.
public enum InboundTopic {
    /// The prefix of every inbound topic.
    public static let prefix = "healthcode.inbound."
    /// The prefix of every rejects topic.
    public static let rejectsPrefix = "healthcode.rejects."

    /// The default inbound topic of `publisher`: `healthcode.inbound.` and the publisher id without a
    /// `urn:hc:publisher:` prefix, every character Kafka does not allow in a topic name as `_` (e.g.
    /// `urn:hc:publisher:gd-transport` → `healthcode.inbound.gd-transport`).
    public static func name(forPublisher publisher: String) -> String {
        var slug = Substring(publisher)
        if slug.hasPrefix("urn:hc:publisher:") { slug = slug.dropFirst("urn:hc:publisher:".count) }
        let allowed = slug.unicodeScalars.map { scalar -> Character in
            isAllowed(scalar) ? Character(scalar) : "_"
        }
        return prefix + String(allowed.prefix(200 - prefix.count))
    }

    /// Whether `name` can be an inbound topic: it starts with ``prefix`` and Kafka accepts it.
    public static func isValid(_ name: String) -> Bool {
        name.hasPrefix(prefix) && name.count > prefix.count && name.count <= 200
            && name.unicodeScalars.allSatisfy(isAllowed)
    }

    /// The rejects topic that goes with an inbound topic.
    public static func rejects(ofInbound inbound: String) -> String {
        rejectsPrefix + inbound.dropFirst(inbound.hasPrefix(prefix) ? prefix.count : 0)
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": true
        default: false
        }
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
