import Crypto
import Foundation

/// Turns raw person identifiers into stable pseudonyms with a keyed HMAC-SHA256.
///
/// The gateway holds the key; Kafka, PostgreSQL and analysts only ever see pseudonyms. Without the
/// key a pseudonym cannot be linked back to an identifier, and the same identifier always maps to the
/// same pseudonym, so events of one person from different publishers meet in one state.
/// A pseudonym is the first 128 bits of the MAC in lowercase hex (32 characters): collision-free in
/// practice for billions of people, and half the index size of the full MAC.
public struct Pseudonymizer: Sendable {
    /// HMAC-SHA256 keyed once: copying it skips deriving the padded keys for every identifier.
    private let keyed: HMAC<SHA256>

    /// Minimum key length in bytes; shorter keys are rejected.
    public static let minimumKeyLength = 16

    /// Creates a pseudonymiser from raw key bytes (at least ``minimumKeyLength``).
    public init(key: [UInt8]) throws(PseudonymKeyError) {
        guard key.count >= Self.minimumKeyLength else {
            throw PseudonymKeyError(
                reason: "key has \(key.count) bytes, at least \(Self.minimumKeyLength) are required"
            )
        }
        self.keyed = HMAC<SHA256>(key: SymmetricKey(data: key))
    }

    /// Creates a pseudonymiser from a hex-encoded key, as kept in configuration.
    public init(hexKey: String) throws(PseudonymKeyError) {
        let trimmed = hexKey.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Self.bytes(fromHex: trimmed) else {
            throw PseudonymKeyError(reason: "key is not an even-length hexadecimal string")
        }
        try self.init(key: bytes)
    }

    /// The pseudonym of a raw identifier.
    public func pseudonym(of rawIdentifier: some StringProtocol) -> String {
        var mac = keyed
        var identifier = String(rawIdentifier)
        identifier.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
        let digest = mac.finalize()
        return digest.withUnsafeBytes { Self.hex(UnsafeRawBufferPointer(rebasing: $0.prefix(16))) }
    }

    /// Whether a string has the shape of a pseudonym (32 lowercase hex characters).
    public static func isPseudonym(_ value: some StringProtocol) -> Bool {
        value.utf8.count == 32 && value.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// A new random key, hex-encoded, for first-time local setup.
    public static func generateHexKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { hex($0) }
    }

    private static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            for (index, byte) in bytes.enumerated() {
                buffer[index * 2] = digits[Int(byte >> 4)]
                buffer[index * 2 + 1] = digits[Int(byte & 0x0f)]
            }
            return bytes.count * 2
        }
    }

    private static func bytes(fromHex hex: String) -> [UInt8]? {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var result = [UInt8]()
        result.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            result.append(high << 4 | low)
            index += 2
        }
        return result
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }
}

/// A pseudonym key that cannot be used. The description never contains the key.
public struct PseudonymKeyError: Error, Sendable, CustomStringConvertible {
    /// Why the key was refused.
    public var reason: String
    public var description: String { "invalid pseudonym key: \(reason)" }
}
