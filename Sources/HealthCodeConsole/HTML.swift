import HealthCodeCore

/// Markup that is safe to send: literals are written as they are, interpolated strings are escaped, and only
/// other `HTML` values are inserted as markup. Every page and chart is built from it, so nothing a publisher,
/// an analyst or a URL supplied can become markup.
struct HTML: ExpressibleByStringInterpolation, Sendable, Equatable {
    var markup: String

    init(stringLiteral value: String) {
        markup = value
    }

    init(stringInterpolation: Interpolation) {
        markup = stringInterpolation.markup
    }

    init(joining parts: [HTML], separator: String = "") {
        markup = parts.map(\.markup).joined(separator: separator)
    }

    static let empty: HTML = ""

    struct Interpolation: StringInterpolationProtocol {
        var markup = ""

        init(literalCapacity: Int, interpolationCount: Int) {
            markup.reserveCapacity(literalCapacity + interpolationCount * 16)
        }

        mutating func appendLiteral(_ literal: String) {
            markup += literal
        }

        mutating func appendInterpolation(_ value: String) {
            markup += HTML.escape(value)
        }

        mutating func appendInterpolation(_ value: Int) {
            markup += String(value)
        }

        mutating func appendInterpolation(_ value: Int64) {
            markup += String(value)
        }

        /// A coordinate or length: at most one decimal, so charts stay small.
        mutating func appendInterpolation(_ value: Double) {
            markup += HTML.number(value)
        }

        mutating func appendInterpolation(_ value: HTML) {
            markup += value.markup
        }

        mutating func appendInterpolation(_ values: [HTML]) {
            for value in values { markup += value.markup }
        }
    }

    /// `value` with `&`, `<`, `>`, `"` and `'` escaped: safe in text and in quoted attributes.
    static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 38 || $0 == 60 || $0 == 62 || $0 == 34 || $0 == 39 }) else {
            return value
        }
        var out = ""
        out.reserveCapacity(value.utf8.count + 16)
        for character in value.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let tenths = (value * 10).rounded()
        if tenths.truncatingRemainder(dividingBy: 10) == 0 { return String(Int64(tenths / 10)) }
        return String(format: "%.1f", tenths / 10)
    }
}

/// How the console writes instants and durations for people.
enum Display {
    /// `2020-04-03 10:00:00 UTC`.
    static func instant(_ instant: Instant) -> String {
        field(instant).replacingOccurrences(of: "T", with: " ") + " UTC"
    }

    /// The value of a `datetime-local` field for `instant` (UTC, to the second).
    static func field(_ instant: Instant) -> String {
        let text = instant.rfc3339Seconds
        return text.hasSuffix("Z") ? String(text.dropLast()) : text
    }

    /// An instant from a query parameter: RFC 3339, or a `datetime-local` value (`2020-04-03T10:00` or with
    /// seconds), read as UTC.
    static func instant(parsing value: Substring) -> Instant? {
        let text = String(value)
        guard text.utf8.count <= 64 else { return nil }
        if let instant = Instant(rfc3339: text) { return instant }
        let colons = text.filter { $0 == ":" }.count
        return Instant(rfc3339: colons == 1 ? text + ":00Z" : text + "Z")
    }

    /// `3 min ago`, `2 h ago`, `5 days ago`; `in the future` for a clock ahead.
    static func age(of instant: Instant, now: Instant) -> String {
        let seconds = (now.microsecondsSinceEpoch - instant.microsecondsSinceEpoch) / 1_000_000
        switch seconds {
        case ..<0: return "just now"
        case 0..<60: return "\(seconds) s ago"
        case 60..<3600: return "\(seconds / 60) min ago"
        case 3600..<172_800: return "\(seconds / 3600) h ago"
        default: return "\(seconds / 86_400) days ago"
        }
    }

    /// `12,345`.
    static func count(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return value < 0 ? "-" + out : out
    }

    /// `+12`, `-3`, `no change`.
    static func change(_ value: Int) -> String {
        value == 0 ? "no change" : value > 0 ? "+\(count(value))" : count(value)
    }

    /// `1 change waits`, `3 changes wait`.
    static func counted(_ value: Int, _ one: String, _ many: String) -> String {
        "\(count(value)) \(value == 1 ? one : many)"
    }

    /// `45.2%` of `total`; `0%` when there is nothing.
    static func share(_ value: Int, of total: Int) -> String {
        guard total > 0 else { return "0%" }
        return HTML.number(Double(value) * 100 / Double(total)) + "%"
    }
}
