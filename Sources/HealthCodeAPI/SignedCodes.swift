import AsyncHTTPClient
import Foundation
import HealthCodeCore
import JWTKit
import NIOCore

/// The claims of a signed code: a compact JWS (ES256) that a checkpoint in any region can verify
/// offline with the issuer's published keys (`/.well-known/jwks.json`).
///
/// `iss` is the issuing region, `sub` the pseudonym (never the raw identifier), `status` the colour,
/// `iat` the issue instant and `exp` a short expiry (at most the code's own `validUntil`).
public struct SignedCodeClaims: JWTPayload, Equatable {
    public var iss: IssuerClaim
    public var sub: SubjectClaim
    public var status: String
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        guard CodeStatus(rawValue: status) != nil else {
            throw JWTError.claimVerificationFailure(failedClaim: nil, reason: "status is not a code colour")
        }
    }
}

/// A signed code as the API returns it.
public struct SignedCode: Sendable, Codable, Hashable {
    /// The compact JWS.
    public var token: String
    public var issuer: String
    public var expiresAt: Instant
}

/// Why a signed code did not verify. Never holds the token.
public struct SignedCodeRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// `malformed`, `untrusted-issuer`, `unknown-key` (revoked or never published), `bad-signature`
    /// or `expired`.
    public var code: String
    public var description: String { code }
}

/// One ES256 signing key of this issuer; `kid` names it in tokens and in the JWKS.
public struct CodeSigningKey: Sendable {
    public var kid: String
    public var key: ES256PrivateKey

    public init(kid: String, key: ES256PrivateKey) {
        self.kid = kid
        self.key = key
    }

    /// The keys of a directory: every `<kid>.pem` file holds an ES256 (P-256) private key, sorted by
    /// kid. The last one signs; all are published, so codes signed before a rotation still verify
    /// until they expire. Deleting a file revokes its key. With `createIfMissing`, an empty or
    /// missing directory gets a first key (local setup only).
    public static func load(directory: URL, createIfMissing: Bool) throws -> [CodeSigningKey] {
        let files = FileManager.default
        var names =
            ((try? files.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".pem") }.sorted()
        if names.isEmpty && createIfMissing {
            try files.createDirectory(at: directory, withIntermediateDirectories: true)
            let name = "k" + String(Int(Date().timeIntervalSince1970)) + ".pem"
            let url = directory.appendingPathComponent(name)
            try Data(ES256PrivateKey().pemRepresentation.utf8).write(to: url)
            try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
            names = [name]
        }
        return try names.map { name in
            let pem = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            return CodeSigningKey(kid: String(name.dropLast(4)), key: try ES256PrivateKey(pem: pem))
        }
    }
}

/// Issues signed codes and publishes its public keys as a JWKS.
public struct CodeIssuer: Sendable {
    /// The issuer id (`iss`), e.g. `urn:hc:issuer:gd`.
    public let issuer: String
    private let signing: CodeSigningKey
    private let keys: JWTKeyCollection
    private let lifetime: Duration
    /// `{"keys": [...]}` with every public key.
    public let jwks: String

    /// - Parameters:
    ///   - keys: the issuer's keys, the last one signs (see ``CodeSigningKey/load(directory:createIfMissing:)``).
    ///   - lifetime: how long a signed code is valid at most.
    public init(issuer: String, keys signingKeys: [CodeSigningKey], lifetime: Duration) async throws {
        guard let signing = signingKeys.last else {
            throw SignedCodeRejection(code: "no-signing-key")
        }
        self.issuer = issuer
        self.signing = signing
        self.lifetime = lifetime
        self.keys = JWTKeyCollection()
        await keys.add(ecdsa: signing.key, kid: JWKIdentifier(string: signing.kid))
        self.jwks = try Self.jwks(of: signingKeys)
    }

    /// The JWKS document (RFC 7517) of the public halves of `keys`.
    public static func jwks(of keys: [CodeSigningKey]) throws -> String {
        struct Key: Encodable {
            var kty = "EC"
            var crv = "P-256"
            var alg = "ES256"
            var use = "sig"
            var kid: String
            var x: String
            var y: String
        }
        struct Document: Encodable { var keys: [Key] }
        let document = Document(
            keys: try keys.map { key in
                guard let parameters = key.key.publicKey.parameters else {
                    throw SignedCodeRejection(code: "unusable-key")
                }
                return Key(kid: key.kid, x: parameters.x, y: parameters.y)
            }
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(document), as: UTF8.self)
    }

    /// Signs `status` of `subject` (a pseudonym) issued at `issuedAt`; it expires after the
    /// configured lifetime or at `validUntil`, whichever comes first.
    public func sign(
        subject: String,
        status: CodeStatus,
        issuedAt: Instant,
        validUntil: Instant?
    ) async throws
        -> SignedCode
    {
        var expiresAt = issuedAt + lifetime
        if let validUntil, validUntil < expiresAt { expiresAt = validUntil }
        let claims = SignedCodeClaims(
            iss: IssuerClaim(value: issuer),
            sub: SubjectClaim(value: subject),
            status: status.rawValue,
            iat: IssuedAtClaim(value: issuedAt.date),
            exp: ExpirationClaim(value: expiresAt.date)
        )
        let token = try await keys.sign(claims, kid: JWKIdentifier(string: signing.kid))
        return SignedCode(token: token, issuer: issuer, expiresAt: expiresAt)
    }
}

/// Verifies signed codes of trusted issuers offline: this region's own and those of the regions it
/// recognises, each with its published JWKS.
public struct SignedCodeVerifier: Sendable {
    struct TrustedIssuer: Sendable {
        var keys: JWTKeyCollection
        /// The published key ids: a token naming another key (revoked, or never published) is refused.
        var kids: Set<String>
    }

    private let issuers: [String: TrustedIssuer]

    /// - Parameter trusted: JWKS documents by issuer id.
    public init(trusted: [String: String]) async throws {
        var issuers: [String: TrustedIssuer] = [:]
        for (issuer, jwks) in trusted {
            let document = try JSONDecoder().decode(JWKS.self, from: Data(jwks.utf8))
            issuers[issuer] = TrustedIssuer(
                keys: try await JWTKeyCollection().add(jwks: document),
                kids: Set(document.keys.compactMap { $0.keyIdentifier?.string })
            )
        }
        self.issuers = issuers
    }

    /// The verified claims of `token`, or why it is not acceptable.
    public func verify(_ token: String) async -> Result<SignedCodeClaims, SignedCodeRejection> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Self.json(parts[0]), let payload = Self.json(parts[1]),
            let issuer = payload["iss"] as? String
        else {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        guard let trusted = issuers[issuer] else { return .failure(SignedCodeRejection(code: "untrusted-issuer")) }
        guard let kid = header["kid"] as? String, trusted.kids.contains(kid) else {
            return .failure(SignedCodeRejection(code: "unknown-key"))
        }
        do {
            return .success(try await trusted.keys.verify(token, as: SignedCodeClaims.self))
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            return .failure(SignedCodeRejection(code: "expired"))
        } catch {
            return .failure(SignedCodeRejection(code: "bad-signature"))
        }
    }

    static func json(_ part: Substring) -> [String: Any]? {
        var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}

extension Instant {
    var date: Date { Date(timeIntervalSince1970: Double(microsecondsSinceEpoch) / 1_000_000) }

    init(date: Date) {
        self.init(microsecondsSinceEpoch: Int64((date.timeIntervalSince1970 * 1_000_000).rounded()))
    }
}

extension SignedCodeVerifier {
    /// Verifies `token` against one JWKS document, trusting it for the issuer the token names
    /// (`healthcode verify`: the keys given are the trust anchor).
    public static func verify(_ token: String, jwks: String) async -> Result<SignedCodeClaims, SignedCodeRejection> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let issuer = json(parts[1])?["iss"] as? String else {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        guard let verifier = try? await SignedCodeVerifier(trusted: [issuer: jwks]) else {
            return .failure(SignedCodeRejection(code: "unusable-keys"))
        }
        return await verifier.verify(token)
    }
}

/// Where a JWKS document is read from: an `http(s)://` URL or a file path.
public enum JWKSLocation {
    /// Reads the document (at most 1 MiB).
    public static func load(_ location: String) async throws -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: location), timeout: .seconds(10))
            guard response.status == .ok else { throw SignedCodeRejection(code: "keys-unavailable") }
            return String(buffer: try await response.body.collect(upTo: 1 << 20))
        }
        return try String(contentsOfFile: location, encoding: .utf8)
    }

    /// Reads a trust file, `{"<issuer>": "<JWKS URL or file>", …}`, and every JWKS it names.
    public static func loadTrusted(file: String) async throws -> [String: String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let locations = try JSONDecoder().decode([String: String].self, from: data)
        var documents: [String: String] = [:]
        for (issuer, location) in locations { documents[issuer] = try await load(location) }
        return documents
    }
}
