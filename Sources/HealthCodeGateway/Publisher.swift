import Crypto
import Foundation
import HealthCodeCore
import JWTKit

/// An authenticated publisher: its id (the CloudEvents `source` of all it publishes), the event
/// types it may publish and its own rate limit, if it has one.
public struct Publisher: Sendable, Hashable {
    public var id: String
    public var eventTypes: Set<String>
    /// `nil`: the gateway's default (``GatewayConfiguration/publisherEventsPerSecond``).
    public var rateLimit: PublisherRateLimit?

    public init(id: String, eventTypes: Set<String>, rateLimit: PublisherRateLimit? = nil) {
        self.id = id
        self.eventTypes = eventTypes
        self.rateLimit = rateLimit
    }
}

/// A publisher's API key: 32 random bytes as 64 lowercase hex characters, prefixed `hcpk_`.
/// Only its SHA-256 is stored; the key itself is shown once, when it is created.
public enum PublisherAPIKey {
    /// The prefix that tells API keys from JWT client assertions in `Authorization: Bearer …`.
    public static let prefix = "hcpk_"

    /// A new random API key.
    public static func generate() -> String {
        prefix + SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// The SHA-256 (lowercase hex) under which the key is stored.
    public static func hash(_ key: some StringProtocol) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// The claims of a publisher's JWT client assertion (RFC 7523 style), signed ES256 with the
/// publisher's private key: `iss` = `sub` = the publisher id, `aud` = the gateway's audience,
/// `exp` no later than the configured assertion lifetime after `iat`, and a `jti` never used before by
/// this publisher: the gateway remembers it until `exp` and refuses the assertion a second time, so a
/// client signs a fresh assertion for every request.
public struct ClientAssertion: JWTPayload, Equatable {
    public var iss: IssuerClaim
    public var sub: SubjectClaim
    public var aud: AudienceClaim
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim
    /// Unique per assertion (at most 128 characters); an assertion without one is refused.
    public var jti: IDClaim?

    public init(
        publisher: String,
        audience: String,
        issuedAt: Date,
        lifetime: Duration,
        id: String? = UUID().uuidString
    ) {
        iss = IssuerClaim(value: publisher)
        sub = SubjectClaim(value: publisher)
        aud = AudienceClaim(value: audience)
        iat = IssuedAtClaim(value: issuedAt)
        exp = ExpirationClaim(value: issuedAt.addingTimeInterval(TimeInterval(lifetime.components.seconds)))
        jti = id.map(IDClaim.init(value:))
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }

    /// Signs an assertion for `publisher` with its ES256 private key (what a publisher's client does,
    /// once per request): `id` is its `jti`, a new random one by default.
    public static func sign(
        publisher: String,
        audience: String,
        privateKey: ES256PrivateKey,
        issuedAt: Date = Date(),
        lifetime: Duration = .seconds(60),
        id: String? = UUID().uuidString
    ) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: privateKey)
        return try await keys.sign(
            ClientAssertion(publisher: publisher, audience: audience, issuedAt: issuedAt, lifetime: lifetime, id: id)
        )
    }
}

extension PublisherRecord {
    /// The publisher this record authenticates as (and whose scopes the ingest processor applies).
    public var publisher: Publisher { Publisher(id: id, eventTypes: Set(eventTypes), rateLimit: rateLimit) }
}

extension PublisherRecord {
    /// A publisher that authenticates with ES256 client assertions; throws if `pem` is not an
    /// ES256 (P-256) public key.
    public static func es256(
        id: String,
        publicKeyPEM pem: String,
        eventTypes: [String],
        rateLimit: PublisherRateLimit? = nil
    ) throws -> PublisherRecord {
        let key = try ES256PublicKey(pem: pem)
        return PublisherRecord(
            id: id,
            credential: .es256PublicKey(pem: key.pemRepresentation),
            eventTypes: eventTypes,
            rateLimit: rateLimit
        )
    }

    /// A publisher that authenticates with `apiKey` (only its hash is kept).
    public static func apiKey(
        id: String,
        apiKey: String,
        eventTypes: [String],
        rateLimit: PublisherRateLimit? = nil
    ) -> PublisherRecord {
        PublisherRecord(
            id: id,
            credential: .apiKeyHash(sha256Hex: PublisherAPIKey.hash(apiKey)),
            eventTypes: eventTypes,
            rateLimit: rateLimit
        )
    }
}
