import Crypto
import CryptoExtras
import Foundation
import HealthCodeCore
import NIOPosix
import Synchronization

/// Binds a signed code to the person it was issued to without naming them: the token carries a
/// commitment to the identifier on the person's identity document, never the identifier or a stable
/// pseudonym. A checkpoint that reads the document recomputes the commitment offline and compares.
///
/// Two steps, so that issuing stays cheap while guessing stays expensive: the normalised identifier
/// (``normalise(_:)``) is first stretched with PBKDF2-HMAC-SHA256, `i` iterations, salted with the
/// issuer and the UTC day `d` (``stretch(_:issuer:day:iterations:)``); the token then carries
/// `h` = HMAC-SHA256(stretched key, `s`) over a random 16-byte salt `s` drawn for each token. The
/// issuer stretches a person's identifier once a day and keeps the key in memory
/// (``HolderKeyCache``), so a signed code costs a microsecond HMAC, not 40 ms of stretching; two
/// tokens of the same person share no value but the day; and whoever holds a token must still pay
/// the stretching once per guessed identifier, though one table of guesses serves every token of that
/// issuer and day (see the README's security section for what that means).
public struct HolderBindingClaim: Codable, Sendable, Hashable {
    /// The UTC day of the stretching, `yyyy-mm-dd`.
    public var d: String
    /// The per-token salt, base64url without padding.
    public var s: String
    /// The PBKDF2 iteration count of the stretching.
    public var i: Int
    /// HMAC-SHA256(stretched key, salt) (32 bytes), base64url without padding.
    public var h: String

    public init(d: String, s: String, i: Int, h: String) {
        self.d = d
        self.s = s
        self.i = i
        self.h = h
    }

    /// Bytes of salt and of the commitment.
    static let saltBytes = 16
    static let digestBytes = 32

    /// The UTC day of `instant`, as `d` names it.
    public static func day(of instant: Instant) -> String { String(instant.rfc3339Seconds.prefix(10)) }

    /// The stretched key of `identifier` for `issuer` on `day`: the expensive step, once per person and
    /// day at the issuer, once per verification at a checkpoint.
    public static func stretch(_ identifier: String, issuer: String, day: String, iterations: Int) throws -> [UInt8] {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(normalise(identifier).utf8),
            salt: Array("hc-holder-binding|\(issuer)|\(day)".utf8),
            using: .sha256,
            outputByteCount: digestBytes,
            unsafeUncheckedRounds: iterations
        )
        return key.withUnsafeBytes { Array($0) }
    }

    /// A commitment by `stretched` (``stretch(_:issuer:day:iterations:)``) with a fresh random salt.
    public static func commit(stretched: [UInt8], day: String, iterations: Int) -> HolderBindingClaim {
        let salt = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
        return HolderBindingClaim(
            d: day,
            s: Base64URL.encode(salt),
            i: iterations,
            h: Base64URL.encode(mac(stretched, salt))
        )
    }

    private static func mac(_ stretched: [UInt8], _ salt: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: salt, using: SymmetricKey(data: stretched)))
    }

    /// Whether `identifier` is the one committed to by `issuer` (constant-time comparison). The caller
    /// bounds ``i`` and checks the form first (``HolderBindingLimits``, ``isWellFormed``).
    public func matches(_ identifier: String, issuer: String) throws -> Bool {
        guard let salt = Base64URL.decode(s), let expected = Base64URL.decode(h) else { return false }
        let digest = Self.mac(try Self.stretch(identifier, issuer: issuer, day: d, iterations: i), salt)
        guard digest.count == expected.count else { return false }
        return zip(digest, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Whether the day, salt and commitment have their fixed forms.
    var isWellFormed: Bool {
        d.utf8.count == 10 && Instant(rfc3339: d + "T00:00:00Z") != nil
            && Base64URL.decode(s)?.count == Self.saltBytes && Base64URL.decode(h)?.count == Self.digestBytes
    }

    /// The identifier as compared: letters upper-cased, spaces and hyphens dropped (`4401 0619-9001
    /// 011234x` and `440106199001011234X` are the same document).
    public static func normalise(_ identifier: String) -> String {
        String(identifier.uppercased().unicodeScalars.filter { !$0.properties.isWhitespace && $0 != "-" })
    }

    /// Runs the stretching off the event loops (it takes tens of milliseconds by design).
    static func offLoop<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}

/// The stretched holder keys an issuer made today, by a key that is not the identifier (the pseudonym),
/// so that a person's later codes that day cost an HMAC. At most `capacity` are kept; the oldest made is
/// dropped first; a key of another day is made again.
public final class HolderKeyCache: Sendable {
    struct State {
        var keys: [String: (day: String, key: [UInt8])] = [:]
        /// Cache keys in the order they were made, as a ring of `capacity` slots.
        var order: [String] = []
        var next = 0

        mutating func insert(_ cacheKey: String, day: String, key: [UInt8], capacity: Int) {
            if keys.updateValue((day, key), forKey: cacheKey) != nil { return }
            if order.count < capacity {
                order.append(cacheKey)
            } else {
                keys[order[next]] = nil
                order[next] = cacheKey
                next = (next + 1) % capacity
            }
        }
    }

    private let capacity: Int
    private let state = Mutex(State())

    /// - Parameter capacity: most keys kept; 0 keeps none.
    public init(capacity: Int) {
        self.capacity = capacity
    }

    /// The key kept for `cacheKey` on `day`, if any.
    func key(for cacheKey: String, day: String) -> [UInt8]? {
        state.withLock { state in state.keys[cacheKey].flatMap { $0.day == day ? $0.key : nil } }
    }

    func keep(_ key: [UInt8], for cacheKey: String, day: String) {
        guard capacity > 0 else { return }
        state.withLock { $0.insert(cacheKey, day: day, key: key, capacity: capacity) }
    }

    /// Keys kept now.
    public var count: Int { state.withLock { $0.keys.count } }
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
