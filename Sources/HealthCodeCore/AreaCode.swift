/// A 6-digit administrative division code `PPCCDD` (GB/T 2260), such as `440106`.
///
/// A code ending in `0000` is a province and covers every code with the same first two digits; a code ending
/// in `00` (not `0000`) is a city and covers every code with the same first four digits; any other code is a
/// district and covers itself. The first digit is never `0` (no province is numbered `00`). Stored as an
/// integer so that hashing and hierarchy checks on the evaluation path cost no string work.
public struct AreaCode: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The level of a code in the administrative hierarchy.
    public enum Level: Sendable, Hashable {
        case province
        case city
        case district
    }

    /// The code as a number, `100000...999999`.
    public let value: Int32

    /// Parses exactly six ASCII digits whose first digit is not `0`.
    public init?(_ text: String) {
        var text = text
        guard let value = text.withUTF8({ AreaCode.parse($0) }) else { return nil }
        self.value = value
    }

    init(uncheckedValue: Int32) {
        self.value = uncheckedValue
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard bytes.count == 6, bytes[0] >= UInt8(ascii: "1"), bytes[0] <= UInt8(ascii: "9") else { return nil }
        var value: Int32 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int32(byte &- UInt8(ascii: "0"))
        }
        return value
    }

    /// Province, city or district, from the trailing zero pairs.
    public var level: Level {
        if value % 10_000 == 0 { return .province }
        if value % 100 == 0 { return .city }
        return .district
    }

    /// The province `PP0000` containing this code (itself for a province).
    public var province: AreaCode { AreaCode(uncheckedValue: value - value % 10_000) }

    /// The city `PPCC00` containing this code, or `nil` when `CC` is `00` (the province itself) or for a
    /// province.
    public var city: AreaCode? {
        let city = value - value % 100
        return city % 10_000 == 0 ? nil : AreaCode(uncheckedValue: city)
    }

    /// The codes that cover this one, nearest first (city, then province), excluding the code itself.
    public var ancestors: [AreaCode] {
        switch level {
        case .province: return []
        case .city: return [province]
        case .district: return city.map { [$0, province] } ?? [province]
        }
    }

    /// Whether this code covers `other`: equal, or an ancestor of it.
    public func covers(_ other: AreaCode) -> Bool {
        switch level {
        case .province: value / 10_000 == other.value / 10_000
        case .city: value / 100 == other.value / 100
        case .district: value == other.value
        }
    }

    public var description: String { String(value) }

    public static func < (lhs: AreaCode, rhs: AreaCode) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let code = AreaCode(try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected a 6-digit area code")
        }
        self = code
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
