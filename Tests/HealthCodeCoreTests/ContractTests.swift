import Foundation
import Testing

@testable import HealthCodeCore

@Suite("Instants")
struct InstantTests {
    @Test(
        arguments: [
            ("1970-01-01T00:00:00Z", Int64(0)),
            ("2020-04-03T12:00:00Z", 1_585_915_200_000_000),
            ("2020-04-03T20:00:00+08:00", 1_585_915_200_000_000),
            ("2020-04-03t12:00:00.5z", 1_585_915_200_500_000),
            ("2020-04-03T11:00:00.000001-01:00", 1_585_915_200_000_001),
            ("2020-02-29T00:00:00Z", 1_582_934_400_000_000),
            ("1969-12-31T23:59:59.999999Z", -1),
            ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
        ]
    )
    func parses(text: String, microseconds: Int64) {
        #expect(Instant(rfc3339: text)?.microsecondsSinceEpoch == microseconds)
    }

    @Test(
        arguments: [
            "2020-04-03", "2020-04-03T12:00:00", "2020-04-03 12:00:00Z", "2020-04-03T12:00:60Z", "2020-04-03T24:00:00Z",
            "2021-02-29T00:00:00Z", "2020-04-31T00:00:00Z", "0000-01-01T00:00:00Z", "2020-04-03T12:00:00.Z",
            "2020-04-03T12:00:00.1234567Z", "2020-04-03T12:00:00+0800", "2020-04-03T12:00:00+24:00",
            "2020-04-03T12:00:00Z ", "+2020-04-03T12:00:00Z", "２020-04-03T12:00:00Z",
        ]
    )
    func rejects(text: String) {
        #expect(Instant(rfc3339: text) == nil)
    }

    @Test func formatsUTCWithAndWithoutFraction() {
        let value = Instant(microsecondsSinceEpoch: 1_585_915_200_250_000)
        #expect(value.rfc3339 == "2020-04-03T12:00:00.25Z")
        #expect(value.rfc3339Seconds == "2020-04-03T12:00:00Z")
        #expect(Instant(microsecondsSinceEpoch: -1).rfc3339 == "1969-12-31T23:59:59.999999Z")
        #expect(Instant(microsecondsSinceEpoch: -1).rfc3339Seconds == "1969-12-31T23:59:59Z")
        #expect(instant("9999-12-31T23:59:59Z") + day == instant("9999-12-31T23:59:59Z") + .seconds(86_400))
        #expect((instant("9999-12-31T23:59:59Z") + day).rfc3339 == "10000-01-01T23:59:59Z")
    }

    @Test func formattingRoundTripsOverFourCenturies() {
        var generator = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            let micros = Int64(bitPattern: generator.next() % 12_622_780_800_000_000) - 2_208_988_800_000_000
            let value = Instant(microsecondsSinceEpoch: micros)
            #expect(Instant(rfc3339: value.rfc3339) == value)
        }
    }

    @Test func arithmeticAndCodable() throws {
        let start = instant("2020-04-01T00:00:00Z")
        #expect(start + day * 14 - start == day * 14)
        #expect((start - hour).rfc3339 == "2020-03-31T23:00:00Z")
        let data = try JSONEncoder().encode([start + .milliseconds(5)])
        #expect(String(decoding: data, as: UTF8.self) == "[\"2020-04-01T00:00:00.005Z\"]")
        #expect(try JSONDecoder().decode([Instant].self, from: data) == [start + .milliseconds(5)])
    }
}

@Suite("Area codes")
struct AreaCodeTests {
    @Test func levelsAndAncestors() {
        #expect(area("440000").level == .province)
        #expect(area("440100").level == .city)
        #expect(area("440106").level == .district)
        #expect(area("440106").ancestors == [area("440100"), area("440000")])
        #expect(area("440100").ancestors == [area("440000")])
        #expect(area("440000").ancestors == [])
        #expect(area("110001").ancestors == [area("110000")], "no city when CC is 00")
    }

    @Test func coverage() {
        #expect(area("440000").covers(area("440106")))
        #expect(area("440000").covers(area("440000")))
        #expect(!area("440000").covers(area("450106")))
        #expect(area("440100").covers(area("440106")))
        #expect(!area("440100").covers(area("440206")))
        #expect(!area("440100").covers(area("440000")))
        #expect(area("440106").covers(area("440106")))
        #expect(!area("440106").covers(area("440105")))
    }

    @Test(arguments: ["", "44010", "4401066", "040106", "44O106", " 440106", "٤٤٠١٠٦"])
    func rejects(text: String) {
        #expect(AreaCode(text) == nil)
    }
}

@Suite("Event decoding")
struct EventDecoderTests {
    static let line =
        #"{"specversion":"1.0","id":"e1","source":"urn:s","type":"hc.exposure.v1","subject":"p-1","time":"2020-04-01T00:00:00Z","data":{"kind":"close-contact"}}"#

    @Test func decodesAndRoundTripsCanonicalBytes() throws {
        let event = try EventDecoder.decode(Array(Self.line.utf8))
        #expect(event.type == .exposure)
        #expect(event.payload == .exposure(Exposure(kind: .closeContact)))
        #expect(event.isPersonEvent)
        #expect(event.effectiveRecordedTime == event.time)
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self) == Self.line)
        var recorded = event
        recorded.recordedTime = instant("2020-04-01T00:00:01.5Z")
        #expect(try EventDecoder.decode(recorded.jsonBytes()) == recorded)
    }

    @Test func retractionsOfDesignationsAreNotPersonEvents() throws {
        let text =
            #"{"specversion":"1.0","id":"r","source":"urn:s","type":"hc.retraction.v1","subject":"440106","time":"2020-04-01T00:00:00Z","data":{"retracts":"x","reason":"y"}}"#
        #expect(!(try EventDecoder.decode(Array(text.utf8))).isPersonEvent)
    }

    @Test func ndjsonBatchReportsLinesAndKeepsGoodEvents() {
        let body = Self.line + "\n\n" + #"{"specversion":"1.0","id":"e2"}"# + "\r\n  \n" + "{oops\n" + Self.line
        let batch = EventDecoder.decodeBatch(Array(body.utf8))
        #expect(batch.error == nil)
        #expect(batch.items.count == 4)
        #expect((try? batch.items[0].get()) != nil)
        guard case .failure(let missing) = batch.items[1], case .failure(let malformed) = batch.items[2] else {
            Issue.record("expected failures")
            return
        }
        #expect(missing.line == 3)
        #expect(missing.eventIndex == 1)
        #expect(missing.eventID == "e2")
        #expect(missing.code == .missingField)
        #expect(missing.fieldPath == "source")
        #expect(missing.description == "line 3: source: missing-field: is required")
        #expect(malformed.line == 5)
        #expect(malformed.code == .malformedJSON)
    }

    @Test func jsonArrayBatch() {
        let batch = EventDecoder.decodeBatch(Array(("  [" + Self.line + ",{\"id\":3}]").utf8))
        #expect(batch.items.count == 2)
        guard case .failure(let error) = batch.items[1] else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.eventIndex == 1)
        #expect(error.line == nil)
        #expect(error.description.hasPrefix("event 1: "))
    }

    @Test(arguments: ["", "  \n ", "[]", "[1,", "{}x"])
    func unusableBodies(body: String) {
        let batch = EventDecoder.decodeBatch(Array(body.utf8))
        if body.hasPrefix("{") {
            #expect(batch.items.count == 1)
            #expect(batch.error == nil)
        } else {
            #expect(batch.items.isEmpty)
            #expect(batch.error != nil)
        }
    }

    @Test func errorsNeverEchoValues() throws {
        let secret = "SECRET-Zhang-San-110101199003077777"
        let texts = [
            Self.line.replacingOccurrences(of: "close-contact", with: secret),
            Self.line.replacingOccurrences(of: "\"kind\"", with: "\"\(secret)\""),
            Self.line.replacingOccurrences(of: "2020-04-01T00:00:00Z", with: secret),
            Self.line.replacingOccurrences(of: "p-1", with: secret + " "),
        ]
        for text in texts {
            do {
                _ = try EventDecoder.decode(Array(text.utf8))
                Issue.record("accepted")
            } catch {
                #expect(!error.description.contains("SECRET"))
                #expect(!error.reason.contains("SECRET"))
            }
        }
    }

    @Test func deepNestingIsRejectedWithoutCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: EventValidationError.self) { try EventDecoder.decode(Array(deep.utf8)) }
    }
}
