#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on the UTC timeline with microsecond resolution, the resolution of PostgreSQL's `timestamptz`.
///
/// Events, rule intervals and code validity are all instants. Parsing and formatting are hand-written over
/// UTF-8 bytes because they sit on the hot paths of the gateway and the projector, where Foundation's date
/// formatters would dominate the cost.
public struct Instant: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microsecondsSinceEpoch: Int64

    /// Creates an instant from microseconds since the Unix epoch.
    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    /// Parses an RFC 3339 `date-time` (section 5.6) such as `2020-04-03T12:00:00Z` or
    /// `2020-04-03T20:00:00.25+08:00`.
    ///
    /// Accepts `T`/`t`, `Z`/`z`, numeric offsets and 1 to 6 fractional digits. Rejects leap seconds
    /// (`:60`, not representable on the POSIX timeline), year 0000, impossible dates and more than 6
    /// fractional digits (finer than the stored resolution; truncating would silently merge instants).
    public init?(rfc3339: String) {
        var text = rfc3339
        guard let value = text.withUTF8({ RFC3339.parse($0) }) else { return nil }
        self.microsecondsSinceEpoch = value
    }

    /// RFC 3339 in UTC with `Z`; fractional seconds only when non-zero, without trailing zeros.
    public var rfc3339: String { RFC3339.format(microsecondsSinceEpoch, fraction: true) }

    /// RFC 3339 in UTC with `Z` and whole seconds (sub-second part truncated towards the past), as printed by
    /// `healthcode evaluate`.
    public var rfc3339Seconds: String { RFC3339.format(microsecondsSinceEpoch, fraction: false) }

    public var description: String { rfc3339 }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
    }

    /// The instant `duration` later, at microsecond resolution (finer parts are truncated).
    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        Instant(microsecondsSinceEpoch: lhs.microsecondsSinceEpoch + rhs.microseconds)
    }

    /// The instant `duration` earlier, at microsecond resolution (finer parts are truncated).
    public static func - (lhs: Instant, rhs: Duration) -> Instant {
        Instant(microsecondsSinceEpoch: lhs.microsecondsSinceEpoch - rhs.microseconds)
    }

    /// The time elapsed from `rhs` to `lhs`.
    public static func - (lhs: Instant, rhs: Instant) -> Duration {
        .microseconds(lhs.microsecondsSinceEpoch - rhs.microsecondsSinceEpoch)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let instant = Instant(rfc3339: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "expected an RFC 3339 date-time"
            )
        }
        self = instant
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rfc3339)
    }
}

extension Instant {
    /// The current wall-clock instant: the one clock of the services (the pure domain functions take
    /// their instants as arguments, so they stay deterministic).
    public static func now() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Instant(microsecondsSinceEpoch: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000)
    }
}

extension Duration {
    /// Whole microseconds in this duration, truncated towards zero.
    public var microseconds: Int64 {
        let parts = components
        return parts.seconds * 1_000_000 + parts.attoseconds / 1_000_000_000_000
    }
}

/// RFC 3339 parsing and formatting over UTF-8 bytes.
enum RFC3339 {
    static let microsecondsPerSecond: Int64 = 1_000_000
    static let microsecondsPerDay: Int64 = 86_400 * 1_000_000

    /// Parses an RFC 3339 date-time, returning microseconds since the epoch.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        // Shortest form: 2020-01-01T00:00:00Z (20 bytes); longest: .ffffff and +hh:mm (32 bytes).
        let count = bytes.count
        guard count >= 20, count <= 32 else { return nil }
        func digit(_ index: Int) -> Int? {
            let byte = bytes[index]
            return byte >= 0x30 && byte <= 0x39 ? Int(byte &- 0x30) : nil
        }
        func number(_ start: Int, _ length: Int) -> Int? {
            var value = 0
            for index in start..<(start + length) {
                guard let d = digit(index) else { return nil }
                value = value * 10 + d
            }
            return value
        }
        guard let year = number(0, 4), bytes[4] == UInt8(ascii: "-"),
            let month = number(5, 2), bytes[7] == UInt8(ascii: "-"),
            let day = number(8, 2), bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"),
            let hour = number(11, 2), bytes[13] == UInt8(ascii: ":"),
            let minute = number(14, 2), bytes[16] == UInt8(ascii: ":"),
            let second = number(17, 2)
        else { return nil }
        guard year >= 1, month >= 1, month <= 12, day >= 1, day <= daysInMonth(year: year, month: month),
            hour <= 23, minute <= 59, second <= 59
        else { return nil }
        var index = 19
        var fraction: Int64 = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < count, let d = digit(index) {
                fraction = fraction * 10 + Int64(d)
                index += 1
            }
            let digits = index - start
            guard digits >= 1, digits <= 6 else { return nil }
            for _ in digits..<6 { fraction *= 10 }
        }
        guard index < count else { return nil }
        var offsetSeconds = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard count - index == 6, let offsetHour = number(index + 1, 2), bytes[index + 3] == UInt8(ascii: ":"),
                let offsetMinute = number(index + 4, 2), offsetHour <= 23, offsetMinute <= 59
            else { return nil }
            offsetSeconds = (offsetHour * 60 + offsetMinute) * 60
            if bytes[index] == UInt8(ascii: "-") { offsetSeconds = -offsetSeconds }
            index += 6
        default:
            return nil
        }
        guard index == count else { return nil }
        let days = Int64(daysFromCivil(year: year, month: month, day: day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return seconds * microsecondsPerSecond + fraction
    }

    static func format(_ microseconds: Int64, fraction: Bool) -> String {
        var days = microseconds / microsecondsPerDay
        var rest = microseconds % microsecondsPerDay
        if rest < 0 {
            rest += microsecondsPerDay
            days -= 1
        }
        let (year, month, day) = civilFromDays(Int(days))
        let secondOfDay = Int(rest / microsecondsPerSecond)
        let micros = Int(rest % microsecondsPerSecond)
        var out = [UInt8]()
        out.reserveCapacity(27)
        // Zero-padded to `width`; wider values (years past 9999, reachable by arithmetic) keep every digit.
        func put(_ value: Int, width: Int) {
            var value = value
            if value < 0 {
                out.append(UInt8(ascii: "-"))
                value = -value
            }
            var divisor = 1
            var digits = 1
            while digits < width || value / divisor >= 10 {
                divisor *= 10
                digits += 1
            }
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(value / divisor))
                value %= divisor
                divisor /= 10
            }
        }
        put(year, width: 4)
        out.append(UInt8(ascii: "-"))
        put(month, width: 2)
        out.append(UInt8(ascii: "-"))
        put(day, width: 2)
        out.append(UInt8(ascii: "T"))
        put(secondOfDay / 3600, width: 2)
        out.append(UInt8(ascii: ":"))
        put(secondOfDay / 60 % 60, width: 2)
        out.append(UInt8(ascii: ":"))
        put(secondOfDay % 60, width: 2)
        if fraction, micros != 0 {
            out.append(UInt8(ascii: "."))
            var digits = 6
            var value = micros
            while value % 10 == 0 {
                value /= 10
                digits -= 1
            }
            put(value, width: digits)
        }
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
