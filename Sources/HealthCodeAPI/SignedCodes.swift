import Crypto
import Foundation
import HealthCodeCore
import JWTKit
import NIOCore

/// The claims of a signed code: a compact JWS (ES256) that a checkpoint in any region can verify
/// offline with the issuer's published keys (`/.well-known/jwks.json`).
///
/// `iss` is the issuing region, `status` the colour, `iat` the issue instant, `exp` a short expiry (at
/// most the code's own `validUntil`), `jti` a random id and `hb` the holder binding
/// (``HolderBindingClaim``). No claim names the person or stays the same across their tokens.
public struct SignedCodeClaims: JWTPayload, Equatable {
    public var iss: IssuerClaim
    public var status: String
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim
    public var jti: IDClaim
    public var hb: HolderBindingClaim

    /// Only the claims' form; expiry and the binding are checked by ``SignedCodeVerifier`` with
    /// checked conversions.
    public func verify(using algorithm: some JWTAlgorithm) async throws {
        guard CodeStatus(rawValue: status) != nil else {
            throw JWTError.claimVerificationFailure(failedClaim: nil, reason: "status is not a code colour")
        }
    }
}

/// A signed code that verified: its claims, its instants and whether its holder was checked.
public struct VerifiedCode: Sendable, Equatable {
    public var claims: SignedCodeClaims
    public var issuedAt: Instant
    public var expiresAt: Instant
    /// Whether the holder's document identifier was compared with the binding (and matched).
    public var holderChecked: Bool
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
    /// `malformed` (also: a claim out of range), `untrusted-issuer`, `keys-unavailable` (a trusted
    /// issuer whose keys were never fetched), `unknown-key` (revoked or never published),
    /// `bad-signature`, `expired`, `weak-holder-binding` (fewer iterations than the verifier accepts) or
    /// `wrong-holder` (issued to someone else).
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
    private let bindingIterations: Int
    private let holderKeys: HolderKeyCache
    /// `{"keys": [...]}` with every public key.
    public let jwks: String

    /// - Parameters:
    ///   - keys: the issuer's keys, the last one signs (see ``CodeSigningKey/load(directory:createIfMissing:)``).
    ///   - lifetime: how long a signed code is valid at most.
    ///   - bindingIterations: PBKDF2 iterations of the holder bindings' stretching.
    ///   - holderKeyCacheEntries: stretched holder keys kept for the day (``HolderKeyCache``).
    public init(
        issuer: String,
        keys signingKeys: [CodeSigningKey],
        lifetime: Duration,
        bindingIterations: Int = HolderBindingLimits().iterations,
        holderKeyCacheEntries: Int = 100_000
    ) async throws {
        guard let signing = signingKeys.last else {
            throw SignedCodeRejection(code: "no-signing-key")
        }
        self.issuer = issuer
        self.signing = signing
        self.lifetime = lifetime
        self.bindingIterations = bindingIterations
        self.holderKeys = HolderKeyCache(capacity: holderKeyCacheEntries)
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

    /// Signs `status` for the holder of the document `holder` (its identifier as on the document; it
    /// is committed to, never carried) issued at `issuedAt`; it expires after the configured lifetime
    /// or at `validUntil`, whichever comes first. The holder's stretched key is made off the event
    /// loops, once a day per `holderKey` (the person's pseudonym; `nil`: not kept).
    public func sign(
        holder: String,
        holderKey: String? = nil,
        status: CodeStatus,
        issuedAt: Instant,
        validUntil: Instant?
    ) async throws
        -> SignedCode
    {
        var expiresAt = issuedAt + lifetime
        if let validUntil, validUntil < expiresAt { expiresAt = validUntil }
        let iterations = bindingIterations
        let day = HolderBindingClaim.day(of: issuedAt)
        let stretched: [UInt8]
        if let holderKey, let kept = holderKeys.key(for: holderKey, day: day) {
            stretched = kept
        } else {
            let issuer = issuer
            stretched = try await HolderBindingClaim.offLoop {
                try HolderBindingClaim.stretch(holder, issuer: issuer, day: day, iterations: iterations)
            }
            if let holderKey { holderKeys.keep(stretched, for: holderKey, day: day) }
        }
        let binding = HolderBindingClaim.commit(stretched: stretched, day: day, iterations: iterations)
        let claims = SignedCodeClaims(
            iss: IssuerClaim(value: issuer),
            status: status.rawValue,
            iat: IssuedAtClaim(value: issuedAt.date),
            exp: ExpirationClaim(value: expiresAt.date),
            jti: IDClaim(value: Base64URL.encode(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) })),
            hb: binding
        )
        let token = try await keys.sign(claims, kid: JWKIdentifier(string: signing.kid))
        return SignedCode(token: token, issuer: issuer, expiresAt: expiresAt)
    }
}

/// Verifies signed codes of trusted issuers offline: this region's own and those of the regions it
/// recognises, each with its published JWKS (``TrustedKeySets``), and, given the identifier on the
/// holder's document, that the code was issued to that holder.
///
/// Every number in a token is untrusted: instants and iteration counts are converted with checks, so a
/// validly signed token with absurd values is refused (`malformed`), never a trap.
public struct SignedCodeVerifier: Sendable {
    /// Longest token considered.
    public static let maximumTokenBytes = 4096

    /// The trusted issuers' keys.
    public let keySets: TrustedKeySets
    private let limits: HolderBindingLimits

    /// - Parameters:
    ///   - trusted: JWKS documents by issuer id.
    ///   - limits: the holder-binding iterations accepted.
    public init(trusted: [String: String], limits: HolderBindingLimits = HolderBindingLimits()) async throws {
        let keySets = TrustedKeySets(issuers: trusted.keys)
        for (issuer, jwks) in trusted { try await keySets.install(jwks: jwks, for: issuer) }
        self.init(keySets: keySets, limits: limits)
    }

    /// A verifier over key sets kept current elsewhere (``TrustedKeyRefresher``).
    public init(keySets: TrustedKeySets, limits: HolderBindingLimits = HolderBindingLimits()) {
        self.keySets = keySets
        self.limits = limits
    }

    /// The verified code, or why it is not acceptable. With `holder` (the identifier on the document
    /// of the person showing the code), the code must have been issued to that person (`wrong-holder`
    /// otherwise); without, the holder is not checked (``VerifiedCode/holderChecked`` is false).
    public func verify(
        _ token: String,
        holder: String? = nil,
        now: Instant = .now()
    ) async -> Result<VerifiedCode, SignedCodeRejection> {
        guard token.utf8.count <= Self.maximumTokenBytes else {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Self.json(parts[0]), let payload = Self.json(parts[1]),
            let issuer = payload["iss"] as? String
        else {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        let keySet: TrustedKeySets.KeySet
        switch keySets.lookup(issuer) {
        case .untrusted: return .failure(SignedCodeRejection(code: "untrusted-issuer"))
        case .unavailable: return .failure(SignedCodeRejection(code: "keys-unavailable"))
        case .available(let set): keySet = set
        }
        guard let kid = header["kid"] as? String, keySet.kids.contains(kid) else {
            return .failure(SignedCodeRejection(code: "unknown-key"))
        }
        let claims: SignedCodeClaims
        do {
            claims = try await keySet.keys.verify(token, as: SignedCodeClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(SignedCodeRejection(code: "bad-signature"))
        } catch {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        guard let issuedAt = Instant(checkedDate: claims.iat.value),
            let expiresAt = Instant(checkedDate: claims.exp.value),
            claims.hb.isWellFormed, claims.hb.i <= limits.maximumIterations, claims.hb.i > 0
        else {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        guard now < expiresAt else { return .failure(SignedCodeRejection(code: "expired")) }
        guard claims.hb.i >= limits.minimumIterations else {
            return .failure(SignedCodeRejection(code: "weak-holder-binding"))
        }
        guard let holder else {
            return .success(
                VerifiedCode(claims: claims, issuedAt: issuedAt, expiresAt: expiresAt, holderChecked: false)
            )
        }
        let binding = claims.hb
        guard (try? await HolderBindingClaim.offLoop({ try binding.matches(holder, issuer: issuer) })) == true else {
            return .failure(SignedCodeRejection(code: "wrong-holder"))
        }
        return .success(VerifiedCode(claims: claims, issuedAt: issuedAt, expiresAt: expiresAt, holderChecked: true))
    }

    static func json(_ part: Substring) -> [String: Any]? {
        guard let bytes = Base64URL.decode(part) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }
}

extension Instant {
    var date: Date { Date(timeIntervalSince1970: Double(microsecondsSinceEpoch) / 1_000_000) }

    /// Latest instant a token may name: 9999-12-31T23:59:59Z.
    static let latestTokenSeconds = 253_402_300_799.0

    /// `date` as an instant if it lies between 1970 and the year 9999 (a token's claim is untrusted:
    /// an unchecked conversion of 1e13 s to microseconds would overflow); `nil` otherwise.
    init?(checkedDate date: Date) {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, seconds >= 0, seconds <= Self.latestTokenSeconds else { return nil }
        self.init(microsecondsSinceEpoch: Int64((seconds * 1_000_000).rounded()))
    }
}

extension SignedCodeVerifier {
    /// Verifies `token` against one JWKS document, trusting it for the issuer the token names
    /// (`healthcode verify`: the keys given are the trust anchor).
    public static func verify(
        _ token: String,
        jwks: String,
        holder: String? = nil,
        limits: HolderBindingLimits = HolderBindingLimits()
    ) async -> Result<VerifiedCode, SignedCodeRejection> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= maximumTokenBytes, parts.count == 3, let issuer = json(parts[1])?["iss"] as? String
        else {
            return .failure(SignedCodeRejection(code: "malformed"))
        }
        guard let verifier = try? await SignedCodeVerifier(trusted: [issuer: jwks], limits: limits) else {
            return .failure(SignedCodeRejection(code: "unusable-keys"))
        }
        return await verifier.verify(token, holder: holder)
    }
}
