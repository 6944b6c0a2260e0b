import Foundation
import HealthCodeCore
import HealthCodeHTTP
import JWTKit
import Logging
import ServiceLifecycle
import Synchronization

/// Why a request could not be authenticated as a publisher. The description never holds a
/// credential, only what kind of failure it is.
public struct AuthenticationFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable code: `missing-credentials`, `invalid-credentials`, `replayed-credentials` (a client
    /// assertion used before) or `registry-unavailable`.
    public var code: String
    /// What is wrong, without the credential.
    public var reason: String

    public var description: String { "\(code): \(reason)" }
}

/// The registered publishers, held in memory and refreshed from their store (table `publisher`)
/// every ``GatewayConfiguration/publisherRefreshInterval``, so that authentication costs no database
/// round trip and a revocation takes effect within one interval.
///
/// Credentials are `Authorization: Bearer <API key>` (keys start with `hcpk_`) or
/// `Authorization: Bearer <JWT>`: an ES256-signed ``ClientAssertion`` of the publisher.
public final class PublisherRegistry: Service, Sendable {
    struct Entry: Sendable {
        var publisher: Publisher
        var keys: JWTKeyCollection?
    }

    struct Snapshot: Sendable {
        var byID: [String: Entry] = [:]
        var byKeyHash: [String: Publisher] = [:]
    }

    private let directory: any PublisherDirectory
    private let assertionUses: any AssertionUses
    private let audience: String
    private let maximumAssertionLifetime: Duration
    private let refreshInterval: Duration
    private let logger: Logger
    private let snapshot = Mutex<Snapshot?>(nil)

    /// - Parameters:
    ///   - directory: where the registered publishers are read.
    ///   - assertionUses: where the `jti` of used client assertions are remembered (expired ones are
    ///     forgotten at every refresh).
    ///   - configuration: the audience, assertion lifetime and refresh interval.
    public init(
        directory: any PublisherDirectory,
        assertionUses: any AssertionUses,
        configuration: GatewayConfiguration,
        logger: Logger
    ) {
        self.directory = directory
        self.assertionUses = assertionUses
        self.audience = configuration.effectiveAssertionAudience
        self.maximumAssertionLifetime = configuration.maximumAssertionLifetime
        self.refreshInterval = configuration.publisherRefreshInterval
        self.logger = logger
    }

    /// Reloads the publishers now.
    public func refresh() async throws {
        var next = Snapshot()
        for record in try await directory.publishers() where record.revokedAt == nil {
            switch record.credential {
            case .apiKeyHash(let hash):
                next.byID[record.id] = Entry(publisher: record.publisher, keys: nil)
                next.byKeyHash[hash] = record.publisher
            case .es256PublicKey(let pem):
                do {
                    let keys = JWTKeyCollection()
                    await keys.add(ecdsa: try ES256PublicKey(pem: pem))
                    next.byID[record.id] = Entry(publisher: record.publisher, keys: keys)
                } catch {
                    logger.error("publisher key unreadable; publisher skipped", metadata: ["publisher": "\(record.id)"])
                }
            }
        }
        snapshot.withLock { $0 = next }
    }

    /// Refreshes every interval until shutdown; a failed refresh keeps the previous publishers.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await refresh()
            } catch {
                logger.warning(
                    "publisher registry refresh failed",
                    metadata: ["error": "\(error)"]
                )
            }
            do {
                try await assertionUses.forgetExpired()
            } catch {
                logger.warning("expired client assertions not forgotten", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.refreshInterval) }
        }
    }

    /// The publisher that the `Authorization` header value proves to be.
    public func authenticate(authorization: String?) async -> Result<Publisher, AuthenticationFailure> {
        if snapshot.withLock({ $0 == nil }) {
            // Not loaded yet (the service has just started): load now rather than refuse.
            try? await refresh()
        }
        guard let current = snapshot.withLock({ $0 }) else {
            return .failure(
                AuthenticationFailure(code: "registry-unavailable", reason: "publishers are not loaded yet; retry")
            )
        }
        guard let credential = Bearer.credential(in: authorization) else {
            return .failure(
                AuthenticationFailure(
                    code: "missing-credentials",
                    reason: "send 'Authorization: Bearer' with an API key or an ES256 client assertion"
                )
            )
        }
        let invalid = AuthenticationFailure(
            code: "invalid-credentials",
            reason: "the credential is unknown, revoked, expired or badly signed"
        )
        if credential.hasPrefix(PublisherAPIKey.prefix) {
            return current.byKeyHash[PublisherAPIKey.hash(credential)].map { .success($0) } ?? .failure(invalid)
        }
        guard let issuer = Self.unverifiedIssuer(of: credential), let entry = current.byID[issuer],
            let keys = entry.keys
        else {
            return .failure(invalid)
        }
        do {
            let assertion = try await keys.verify(credential, as: ClientAssertion.self)
            let lifetime = assertion.exp.value.timeIntervalSince(assertion.iat.value)
            guard assertion.sub.value == issuer, assertion.aud.value.contains(audience),
                lifetime <= TimeInterval(maximumAssertionLifetime.components.seconds),
                assertion.iat.value <= Date().addingTimeInterval(60)
            else {
                return .failure(invalid)
            }
            guard let jti = assertion.jti?.value, (1...128).contains(jti.utf8.count) else {
                return .failure(
                    AuthenticationFailure(
                        code: "invalid-credentials",
                        reason: "a client assertion must carry a jti (1 to 128 characters), new for every request"
                    )
                )
            }
            // `exp` lies within the checked lifetime of `iat`, which is not in the future: the conversion is
            // bounded, and checked all the same.
            let expiryMicros = (assertion.exp.value.timeIntervalSince1970 * 1e6).rounded(.up)
            let expiresAt = Instant(microsecondsSinceEpoch: Int64(exactly: expiryMicros) ?? .max)
            let firstUse: Bool
            do {
                firstUse = try await assertionUses.recordFirstUse(issuer: issuer, jti: jti, expiresAt: expiresAt)
            } catch {
                logger.warning("client assertion uses unreadable", metadata: ["error": "\(error)"])
                return .failure(
                    AuthenticationFailure(
                        code: "registry-unavailable",
                        reason: "client assertions cannot be checked for replay now; retry"
                    )
                )
            }
            guard firstUse else {
                return .failure(
                    AuthenticationFailure(
                        code: "replayed-credentials",
                        reason: "this client assertion was used before; sign a new one (new jti) for every request"
                    )
                )
            }
            return .success(entry.publisher)
        } catch {
            return .failure(invalid)
        }
    }

    /// The `iss` claim of a compact JWT, read without verifying it (to pick the key to verify with).
    static func unverifiedIssuer(of token: some StringProtocol) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            return nil
        }
        return object["iss"] as? String
    }
}
