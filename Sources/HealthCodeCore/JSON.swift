/// A parsed JSON value.
///
/// The core parses JSON with its own small scanner over UTF-8 bytes instead of `JSONDecoder`: it is several
/// times faster for the gateway's ~100k events/s, it is strict where the event contract needs strictness
/// (RFC 8259 grammar only, valid UTF-8, no lone surrogates, no duplicate keys, no NaN/Infinity) and it reports
/// byte offsets without echoing input. Objects keep their members in order; lookups are linear, which beats
/// hashing for the ~10 members of an event.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The JSON type name used in error reasons ("must be a string, not an array").
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// One `"key": value` member of a JSON object.
struct JSONMember: Sendable, Equatable {
    var key: String
    var value: JSONValue
}

/// Why a byte sequence is not one JSON value; `offset` is a byte offset into the input.
struct JSONSyntaxError: Error, Sendable, Equatable {
    var offset: Int
    var reason: String
    /// The text is JSON, but larger than the ``JSONLimits`` in force allow.
    var exceedsLimits = false
}

/// How much of a JSON text the parser will materialise. Every bound is checked while parsing, before the
/// value it bounds is allocated or converted, so hostile input costs work linear in its length and memory
/// no larger than the limits: an object of 200,000 members fails at its 33rd member, a 4 MB string before a
/// byte of it is copied.
struct JSONLimits: Sendable, Equatable {
    /// Deepest nesting of objects and arrays.
    var maximumDepth: Int
    /// Most members of one object.
    var maximumMembers: Int
    /// Most elements of one array.
    var maximumElements: Int
    /// Longest string token, in input bytes (escapes included).
    var maximumStringBytes: Int
    /// Longest number token, in input bytes.
    var maximumNumberBytes: Int

    /// One contract event. Its schemas allow 11 envelope members, an object of at most 4 data members
    /// inside and one array of at most 8 distinct symptoms, strings of at most 2,000 characters (at most
    /// 24,000 bytes when every character is a `\u` surrogate pair) and one measurement. The bounds leave
    /// room for an event that breaks the contract to get the decoder's field-by-field error.
    static let event = JSONLimits(
        maximumDepth: 8,
        maximumMembers: 32,
        maximumElements: 32,
        maximumStringBytes: 32 << 10,
        maximumNumberBytes: 64
    )

    /// Documents that operators or the project itself write: rule sets and stored states, whose arrays
    /// grow with a person's history.
    static let document = JSONLimits(
        maximumDepth: 32,
        maximumMembers: 1 << 20,
        maximumElements: 1 << 24,
        maximumStringBytes: 16 << 20,
        maximumNumberBytes: 64
    )
}

/// A strict RFC 8259 parser over a buffer of UTF-8 bytes.
struct JSONParser {
    /// Objects with more members than this check names for duplicates through a hash set instead of a scan,
    /// keeping the check linear for large documents.
    private static let linearDuplicateScanLimit = 16

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index: Int
    private let end: Int
    private let limits: JSONLimits

    /// Parses exactly one JSON value from `bytes[range]`, allowing surrounding whitespace.
    static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>,
        range: Range<Int>? = nil,
        limits: JSONLimits = .document
    ) throws(JSONSyntaxError)
        -> JSONValue
    {
        let range = range ?? 0..<bytes.count
        var parser = JSONParser(bytes: bytes, index: range.lowerBound, end: range.upperBound, limits: limits)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.end else {
            throw JSONSyntaxError(offset: parser.index, reason: "unexpected content after the JSON value")
        }
        return value
    }

    /// Parses `bytes`, copying into contiguous storage only when the collection has none.
    static func parse(
        _ bytes: some Collection<UInt8>,
        limits: JSONLimits = .document
    ) throws(JSONSyntaxError)
        -> JSONValue
    {
        let result: Result<JSONValue, JSONSyntaxError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONSyntaxError) in try parse(buffer, limits: limits) }
        }
        if let result { return try result.get() }
        return try Array(bytes).withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in
            try parse(buffer, limits: limits)
        }
    }

    /// Parses a JSON array whose first byte is at `start`, handing each element to `element` as soon as it is
    /// parsed (with `limits` applying to each element), so that the array is never materialised whole. More
    /// than `maximumElements` elements stop the parse with an error whose `exceedsLimits` is set.
    static func forEachElement(
        of bytes: UnsafeBufferPointer<UInt8>,
        start: Int,
        maximumElements: Int,
        limits: JSONLimits,
        _ element: (JSONValue) -> Void
    ) throws(JSONSyntaxError) {
        var parser = JSONParser(bytes: bytes, index: start, end: bytes.count, limits: limits)
        guard parser.index < parser.end, bytes[parser.index] == UInt8(ascii: "[") else {
            throw parser.fail("expected an array")
        }
        // The batch's own array does not count as nesting: each element is a document of its own.
        try parser.parseElements(depth: 0, maximum: maximumElements, element)
        parser.skipWhitespace()
        guard parser.index == parser.end else { throw parser.fail("unexpected content after the JSON value") }
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, index: Int, end: Int, limits: JSONLimits) {
        self.bytes = bytes
        self.index = index
        self.end = end
        self.limits = limits
    }

    private func fail(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: index, reason: reason)
    }

    private func exceeded(_ reason: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? index, reason: reason, exceedsLimits: true)
    }

    private mutating func skipWhitespace() {
        while index < end {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard index < end else { throw fail("unexpected end of input, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw fail("expected a value")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard end - index >= count else { throw fail("invalid literal") }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != expected[offset] {
            throw fail("invalid literal")
        }
        index += count
    }

    private mutating func parseObject(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth <= limits.maximumDepth else {
            throw exceeded("nesting deeper than \(limits.maximumDepth) levels")
        }
        index += 1
        var members: [JSONMember] = []
        var names: Set<[UInt8]> = []
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < end, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            guard members.count < limits.maximumMembers else {
                throw exceeded("the object has more than \(limits.maximumMembers) members")
            }
            let keyOffset = index
            let key = try parseString()
            if members.count < JSONParser.linearDuplicateScanLimit {
                for member in members where member.key.hasSameBytes(as: key) {
                    throw JSONSyntaxError(offset: keyOffset, reason: "duplicate member name")
                }
            } else {
                // By bytes, not `String` equality, which would also match canonically equivalent names.
                if names.isEmpty { names = Set(members.map { Array($0.key.utf8) }) }
                guard names.insert(Array(key.utf8)).inserted else {
                    throw JSONSyntaxError(offset: keyOffset, reason: "duplicate member name")
                }
            }
            skipWhitespace()
            guard index < end, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append(JSONMember(key: key, value: value))
            skipWhitespace()
            guard index < end else { throw fail("unexpected end of input in an object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth <= limits.maximumDepth else {
            throw exceeded("nesting deeper than \(limits.maximumDepth) levels")
        }
        var elements: [JSONValue] = []
        try parseElements(depth: depth, maximum: limits.maximumElements) { elements.append($0) }
        return .array(elements)
    }

    /// Parses the array whose `[` is at `index`, its elements at `depth`, handing each to `element` as it
    /// is parsed; more than `maximum` elements stop the parse before the next one is read.
    private mutating func parseElements(
        depth: Int,
        maximum: Int,
        _ element: (JSONValue) -> Void
    ) throws(JSONSyntaxError) {
        index += 1
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        var count = 0
        while true {
            skipWhitespace()
            guard count < maximum else { throw exceeded("the array has more than \(maximum) elements") }
            element(try parseValue(depth: depth))
            count += 1
            skipWhitespace()
            guard index < end else { throw fail("unexpected end of input in an array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> Double {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < end, isDigit(bytes[index]) else { throw fail("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < end, isDigit(bytes[index]) else { throw fail("invalid number") }
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < end, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < end, isDigit(bytes[index]) else { throw fail("invalid number") }
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        guard index - start <= limits.maximumNumberBytes else {
            throw exceeded("a number longer than \(limits.maximumNumberBytes) characters", at: start)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw JSONSyntaxError(offset: start, reason: "invalid number") }
        return value
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Parses a string token; the fast path copies plain ASCII/UTF-8 runs without escapes in one step.
    private mutating func parseString() throws(JSONSyntaxError) -> String {
        index += 1
        let start = index
        var sawNonASCII = false
        while index < end {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let run = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return try makeString(run, validating: sawNonASCII, offset: start)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail("control character in a string") }
            if byte >= 0x80 { sawNonASCII = true }
            index += 1
            guard index - start <= limits.maximumStringBytes else { throw stringTooLong(start) }
        }
        // Slow path: the string has escapes.
        var buffer = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < end {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return try buffer.withUnsafeBufferPointer { run throws(JSONSyntaxError) in
                    try makeString(run, validating: sawNonASCII, offset: start)
                }
            case UInt8(ascii: "\\"):
                index += 1
                guard index < end else { throw fail("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): buffer.append(0x22)
                case UInt8(ascii: "\\"): buffer.append(0x5C)
                case UInt8(ascii: "/"): buffer.append(0x2F)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    let scalar = try parseUnicodeEscape()
                    buffer.append(contentsOf: String(Character(scalar)).utf8)
                default:
                    throw JSONSyntaxError(offset: index - 1, reason: "invalid escape")
                }
            default:
                if byte < 0x20 { throw fail("control character in a string") }
                if byte >= 0x80 { sawNonASCII = true }
                buffer.append(byte)
                index += 1
            }
            guard index - start <= limits.maximumStringBytes else { throw stringTooLong(start) }
        }
        throw fail("unterminated string")
    }

    private func stringTooLong(_ start: Int) -> JSONSyntaxError {
        exceeded("a string longer than \(limits.maximumStringBytes) bytes", at: start - 1)
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        guard end - index >= 4 else { throw fail("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | UInt32(nibble)
            index += 1
        }
        return value
    }

    private mutating func parseUnicodeEscape() throws(JSONSyntaxError) -> Unicode.Scalar {
        let escapeStart = index - 2
        let first = try parseHex4()
        var code = first
        if first >= 0xD800, first <= 0xDBFF {
            guard end - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw JSONSyntaxError(offset: escapeStart, reason: "lone surrogate in \\u escape") }
            index += 2
            let second = try parseHex4()
            guard second >= 0xDC00, second <= 0xDFFF else {
                throw JSONSyntaxError(offset: escapeStart, reason: "lone surrogate in \\u escape")
            }
            code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else if first >= 0xDC00, first <= 0xDFFF {
            throw JSONSyntaxError(offset: escapeStart, reason: "lone surrogate in \\u escape")
        }
        guard let scalar = Unicode.Scalar(code) else {
            throw JSONSyntaxError(offset: escapeStart, reason: "invalid \\u escape")
        }
        return scalar
    }

    private func makeString(
        _ run: UnsafeBufferPointer<UInt8>,
        validating: Bool,
        offset: Int
    ) throws(JSONSyntaxError)
        -> String
    {
        guard validating else { return String(decoding: run, as: UTF8.self) }
        guard let string = String(validating: run, as: UTF8.self) else {
            throw JSONSyntaxError(offset: offset, reason: "invalid UTF-8 in a string")
        }
        return string
    }
}

/// Appends JSON text to a byte buffer: canonical event bytes, stored states and decisions, and the hottest
/// HTTP answers, where it is several times faster than `JSONEncoder`. The caller writes the punctuation.
public struct JSONWriter: Sendable {
    /// The text written so far.
    public var bytes: [UInt8] = []

    /// - Parameter capacity: bytes to reserve up front.
    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Writes `text` verbatim (punctuation, literals).
    public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Writes `text` as a JSON string, escaping quotes, backslashes and control characters. Runs of bytes
    /// that need no escape (nearly all of them) are copied at once.
    public mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == 0x7F || byte == 0x22 || byte == 0x5C {
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                escape(byte)
                runStart = index + 1
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): raw("\\\"")
        case UInt8(ascii: "\\"): raw("\\\\")
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        default:
            raw("\\u00")
            bytes.append(JSONWriter.hexDigit(byte >> 4))
            bytes.append(JSONWriter.hexDigit(byte & 0xF))
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// Writes `"key":` (keys are ASCII literals chosen by the caller, written without escaping).
    public mutating func key(_ key: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        raw(key)
        raw("\":")
    }

    /// Writes a finite number in Swift's shortest round-tripping form, which is valid JSON for finite values.
    public mutating func number(_ value: Double) {
        bytes.append(contentsOf: value.description.utf8)
    }

    /// Writes an integer (not generic: callers in other modules would get an unspecialised copy).
    public mutating func integer(_ value: Int64) {
        guard value != 0 else { return bytes.append(UInt8(ascii: "0")) }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        let start = bytes.count
        var rest = value.magnitude
        while rest > 0 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10))
            rest /= 10
        }
        bytes[start...].reverse()
    }

    /// Writes an integer.
    public mutating func integer(_ value: Int) {
        integer(Int64(value))
    }

    /// Writes `true` or `false`.
    public mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    /// Writes `[…]` with `write` called for each element, separated by commas. Inlinable, so that the
    /// writers in other modules get it specialised.
    @inlinable
    public mutating func array<Elements: Sequence>(
        _ elements: Elements,
        _ write: (inout JSONWriter, Elements.Element) -> Void
    ) {
        raw("[")
        var first = true
        for element in elements {
            if !first { raw(",") }
            first = false
            write(&self, element)
        }
        raw("]")
    }

    /// Writes an instant as an RFC 3339 string, or `null`.
    public mutating func instant(_ instant: Instant?) {
        if let instant { string(instant.rfc3339) } else { raw("null") }
    }
}

extension String {
    /// Whether the UTF-8 encodings are identical. Unlike `==` this ignores canonical equivalence, as JSON
    /// Schema, PostgreSQL and every other peer do; lengths are compared first (O(1) for native strings),
    /// then contiguous bytes, which is much cheaper than iterating `utf8` views.
    @inline(__always)
    func hasSameBytes(as other: String) -> Bool {
        let lhs = utf8
        let rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        let fast = lhs.withContiguousStorageIfAvailable { left in
            rhs.withContiguousStorageIfAvailable { right in left.elementsEqual(right) }
        }
        return (fast ?? nil) ?? lhs.elementsEqual(rhs)
    }

    /// Whether this string's UTF-8 encoding sorts before `other`'s, byte-wise (code point order).
    @inline(__always)
    func bytesPrecede(_ other: String) -> Bool {
        let lhs = utf8
        let rhs = other.utf8
        let fast = lhs.withContiguousStorageIfAvailable { left in
            rhs.withContiguousStorageIfAvailable { right in left.lexicographicallyPrecedes(right) }
        }
        return (fast ?? nil) ?? lhs.lexicographicallyPrecedes(rhs)
    }
}
