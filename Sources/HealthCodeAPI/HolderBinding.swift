import Crypto
import CryptoExtras
import Foundation
import NIOPosix
import Synchronization

/// Binds a signed code to the person it was issued to without naming them: the token carries a
/// commitment to the identifier on the person's identity document, never the identifier or a stable
/// pseudonym. A checkpoint that reads the document recomputes the commitment offline and compares.
///
/// The commitment is PBKDF2-HMAC-SHA256 over the normalised identifier (``normalise(_:)``) with a
/// random 16-byte salt drawn for each token, stretched `iterations` times: two tokens of the same
/// person share no value, and whoever holds a token must pay the stretching once per guess to test an
/// identifier against it (identifiers have few bits, so stretching and a short expiry are what bound a
/// brute force; see the README's security section).
public struct HolderBindingClaim: Codable, Sendable, Hashable {
    /// The per-token salt, base64url without padding.
    public var s: String
    /// The PBKDF2 iteration count.
    public var i: Int
    /// The PBKDF2-HMAC-SHA256 output (32 bytes), base64url without padding.
    public var h: String

    public init(s: String, i: Int, h: String) {
        self.s = s
        self.i = i
        self.h = h
    }

    /// Bytes of salt and of the commitment.
    static let saltBytes = 16
    static let digestBytes = 32

    /// A commitment to `identifier` with a fresh random salt.
    public static func commit(to identifier: String, iterations: Int) throws -> HolderBindingClaim {
        let salt = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
        let digest = try derive(identifier, salt: salt, iterations: iterations)
        return HolderBindingClaim(s: Base64URL.encode(salt), i: iterations, h: Base64URL.encode(digest))
    }

    /// Whether `identifier` is the one committed to (constant-time comparison). The caller bounds
    /// ``i`` first (``HolderBindingLimits``).
    public func matches(_ identifier: String) throws -> Bool {
        guard let salt = Base64URL.decode(s), let expected = Base64URL.decode(h) else { return false }
        let digest = try Self.derive(identifier, salt: salt, iterations: i)
        guard digest.count == expected.count else { return false }
        return zip(digest, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Whether the salt and commitment have their fixed sizes.
    var isWellFormed: Bool {
        Base64URL.decode(s)?.count == Self.saltBytes && Base64URL.decode(h)?.count == Self.digestBytes
    }

    /// The identifier as compared: letters upper-cased, spaces and hyphens dropped (`4401 0619-9001
    /// 011234x` and `440106199001011234X` are the same document).
    public static func normalise(_ identifier: String) -> String {
        String(identifier.uppercased().unicodeScalars.filter { !$0.properties.isWhitespace && $0 != "-" })
    }

    static func derive(_ identifier: String, salt: [UInt8], iterations: Int) throws -> [UInt8] {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(normalise(identifier).utf8),
            salt: salt,
            using: .sha256,
            outputByteCount: digestBytes,
            unsafeUncheckedRounds: iterations
        )
        return key.withUnsafeBytes { Array($0) }
    }

    /// Runs the stretching off the event loops (it takes tens of milliseconds by design).
    static func offLoop<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}

/// How holder bindings are made and what a verifier accepts.
public struct HolderBindingLimits: Sendable, Hashable {
    /// PBKDF2 iterations of the bindings this issuer makes.
    public var iterations: Int
    /// Fewest iterations a verifier accepts (a binding cheaper to brute-force is refused,
    /// `weak-holder-binding`).
    public var minimumIterations: Int
    /// Most iterations a verifier will compute (bounded work per verification; beyond is `malformed`).
    public var maximumIterations: Int

    /// Defaults: 100 000 iterations made, at least 50 000 and at most 1 000 000 accepted.
    public init(iterations: Int = 100_000, minimumIterations: Int = 50_000, maximumIterations: Int = 1_000_000) {
        self.iterations = iterations
        self.minimumIterations = minimumIterations
        self.maximumIterations = maximumIterations
    }
}

/// base64url without padding (RFC 7515 §2).
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        guard text.utf8.count <= 16_384 else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard base64.count % 4 != 1 else { return nil }
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map { Array($0) }
    }
}

/// Bounds the holder checks in progress: each costs tens of milliseconds of a core by design, and code
/// verification is public, so beyond ``QueryAPIConfiguration/maximumConcurrentHolderChecks`` a
/// verification is refused at once (503 `busy`, `Retry-After`) instead of queueing without bound.
final class HolderCheckAdmission: Sendable {
    struct State: Sendable {
        enum Action: Equatable, Sendable {
            case admit
            case shed
        }

        let limit: Int
        var inFlight = 0

        mutating func enter() -> Action {
            guard inFlight < limit else { return .shed }
            inFlight += 1
            return .admit
        }

        mutating func leave() {
            inFlight -= 1
        }
    }

    private let state: Mutex<State>

    init(limit: Int) {
        state = Mutex(State(limit: max(limit, 1)))
    }

    /// Runs `check` if fewer than the limit run; `nil` if it was shed.
    func run<Result: Sendable>(_ check: () async -> Result) async -> Result? {
        guard state.withLock({ $0.enter() }) == .admit else { return nil }
        defer { state.withLock { $0.leave() } }
        return await check()
    }
}
