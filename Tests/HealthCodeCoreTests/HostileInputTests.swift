import Foundation
import Testing

@testable import HealthCodeCore

/// Bodies an attacker would send: each is refused with an error that names what is wrong, and the parse
/// stops where the contract's bound is crossed (the error's byte offset shows how far it read), so the work
/// is bounded by the limit, not by the body.
@Suite("Hostile input")
struct HostileInputTests {
    static let event =
        #"{"specversion":"1.0","id":"e1","source":"urn:hc:publisher:gd","type":"hc.test-result.v1","subject":"P1","time":"2020-04-03T08:00:00Z","data":{"test":"pcr","result":"positive","lab":"GZ"}}"#

    /// The event with its `data` replaced by `data`.
    static func event(data: String) -> [UInt8] {
        Array(event.replacingOccurrences(of: #"{"test":"pcr","result":"positive","lab":"GZ"}"#, with: data).utf8)
    }

    func refusal(_ bytes: [UInt8]) -> EventValidationError? {
        do {
            _ = try EventDecoder.decode(bytes)
            return nil
        } catch {
            return error
        }
    }

    /// The byte offset an error's reason names ("… at byte 1234: …").
    func offset(_ error: EventValidationError) -> Int? {
        guard let range = error.reason.range(of: "at byte ") else { return nil }
        return Int(error.reason[range.upperBound...].prefix { $0.isNumber })
    }

    @Test("an object of 200,000 members is refused at its 33rd member")
    func hugeObject() throws {
        let members = (0..<200_000).map { #""m\#($0)":0"# }.joined(separator: ",")
        let bytes = Self.event(data: "{" + members + "}")
        #expect(bytes.count > 2_000_000)
        let error = try #require(refusal(bytes))
        #expect(error.code == .tooLarge)
        #expect(error.reason.contains("more than 32 members"))
        #expect(try #require(offset(error)) < 1_000)
    }

    @Test("duplicate names in a large document are found by a check linear in its members")
    func duplicatesInLargeDocument() throws {
        let members = (0..<100_000).map { #""m\#($0)":0"# } + [#""m5":1"#]
        let text = Array(("{" + members.joined(separator: ",") + "}").utf8)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
        let distinct = Array(("{" + members.dropLast().joined(separator: ",") + "}").utf8)
        guard case .object(let parsed) = try JSONParser.parse(distinct) else {
            Issue.record("not an object")
            return
        }
        #expect(parsed.count == 100_000)
    }

    @Test("nesting 100,000 levels deep is refused at the contract's depth")
    func deepNesting() throws {
        let bytes = Self.event(data: String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
        let error = try #require(refusal(bytes))
        #expect(error.code == .tooLarge)
        #expect(error.reason.contains("nesting deeper than 8"))
        #expect(try #require(offset(error)) < 300)
    }

    @Test("a string of 3 MB is refused before it is copied, plain or escaped")
    func hugeString() throws {
        for filler in ["a", "\\u00e9"] {
            let text = String(repeating: filler, count: 3_000_000 / filler.utf8.count)
            let error = try #require(refusal(Self.event(data: #"{"test":"pcr","lab":""# + text + #""}"#)))
            #expect(error.code == .tooLarge)
            #expect(error.reason.contains("a string longer than 32768 bytes"))
        }
        // 2,000 characters written as escaped surrogate pairs are within the contract and parse.
        let pairs = String(repeating: "\\ud83d\\ude00", count: 2_000)
        let declaration = Array(
            #"{"specversion":"1.0","id":"e1","source":"urn:hc:publisher:p","type":"hc.declaration.v1","subject":"P1","time":"2020-04-03T08:00:00Z","data":{"symptoms":[],"note":""#
                .utf8
        )
        let parsed = try JSONParser.parse(declaration + Array(pairs.utf8) + Array(#""}}"#.utf8), limits: .event)
        guard case .object = parsed else {
            Issue.record("not an object")
            return
        }
    }

    @Test("a number of a million digits is refused before it is converted")
    func hugeNumber() throws {
        let digits = String(repeating: "9", count: 1_000_000)
        let error = try #require(refusal(Self.event(data: #"{"temperatureCelsius":"# + digits + "}")))
        #expect(error.code == .tooLarge)
        #expect(error.reason.contains("a number longer than 64 characters"))
        let exponent = try #require(refusal(Self.event(data: #"{"temperatureCelsius":1e99999}"#)))
        #expect(exponent.code != .tooLarge)
    }

    @Test("a million tiny elements or lines stop at the batch limit")
    func millionsOfTinyElements() throws {
        let array = Array(("[" + Array(repeating: "1", count: 1_000_000).joined(separator: ",") + "]").utf8)
        let fromArray = EventDecoder.decodeBatch(array, maximumEvents: 1_000)
        #expect(fromArray.error?.code == .batchTooLarge)
        #expect(fromArray.items.isEmpty)
        let lines = Array(String(repeating: "{}\n", count: 1_000_000).utf8)
        let fromLines = EventDecoder.decodeBatch(lines, maximumEvents: 1_000)
        #expect(fromLines.error?.code == .batchTooLarge)
        // At the limit exactly, every event is decoded and reported on its own.
        let atLimit = EventDecoder.decodeBatch(
            Array(String(repeating: "{}\n", count: 1_000).utf8),
            maximumEvents: 1_000
        )
        #expect(atLimit.error == nil)
        #expect(atLimit.items.count == 1_000)
    }

    @Test("an oversized event inside an array batch names the event; in NDJSON only its line is refused")
    func oversizedEventInBatch() throws {
        let wide = Self.event(data: "{" + (0..<100).map { #""m\#($0)":0"# }.joined(separator: ",") + "}")
        let array = Array("[".utf8) + Array(Self.event.utf8) + Array(",".utf8) + wide + Array("]".utf8)
        let batch = EventDecoder.decodeBatch(array, maximumEvents: 10)
        #expect(batch.error?.code == .tooLarge)
        #expect(batch.error?.eventIndex == 1)
        let lines = Array((Self.event + "\n").utf8) + wide
        let fromLines = EventDecoder.decodeBatch(lines, maximumEvents: 10)
        #expect(fromLines.error == nil)
        #expect(fromLines.items.count == 2)
        if case .failure(let error) = fromLines.items[1] {
            #expect(error.code == .tooLarge)
            #expect(error.line == 2)
        } else {
            Issue.record("the oversized line was accepted")
        }
    }

    /// Every valid example of the contract, the fuzz test's seeds.
    static let seeds: [[UInt8]] = {
        let base = Repository.root.appendingPathComponent("schemas/examples")
        let files =
            FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }
            .filter { $0.path.contains("/valid/") && $0.pathExtension == "json" } ?? []
        return files.sorted { $0.path < $1.path }.compactMap { try? [UInt8](Data(contentsOf: $0)) }
    }()

    /// Fragments that stress the parser where it converts or allocates.
    static let fragments: [String] = [
        "{", "}", "[", "]", "\"", "\\", "\\u", "\\ud800", "\\udc00\\ud800", ":", ",", "1e999999", "-0.0e-999",
        "99999999999999999999999999999999999999999999999999999999999999999999999", "null", "\u{0}", "\u{7F}",
        "\u{FEFF}", "\\u0000", "\u{10FFFF}", "9999-12-31T23:59:59.999999+23:59", "0001-01-01T00:00:00Z",
        "2020-02-30T00:00:00Z", "\"time\":", "\"data\":{}", "\"type\":\"hc.review.v1\"",
    ]

    /// One random change of `bytes`.
    static func mutate(_ bytes: [UInt8], using random: inout SplitMix64) -> [UInt8] {
        var bytes = bytes
        guard !bytes.isEmpty else { return Array(fragments[0].utf8) }
        let position = Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<6, using: &random) {
        case 0: bytes[position] = UInt8.random(in: 0...255, using: &random)
        case 1: bytes.remove(at: position)
        case 2: bytes.insert(contentsOf: Array(fragments.randomElement(using: &random)!.utf8), at: position)
        case 3:
            let end = min(bytes.count, position + Int.random(in: 1...64, using: &random))
            bytes.insert(contentsOf: bytes[position..<end], at: position)
        case 4: bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...16, using: &random)))
        default:
            let end = min(bytes.count, position + Int.random(in: 1...8, using: &random))
            bytes.replaceSubrange(position..<end, with: Array(fragments.randomElement(using: &random)!.utf8))
        }
        return bytes
    }

    @Test(
        "50,000 random and mutated events never trap; whatever decodes re-encodes to itself and comes back whole from the archive's columns and remainder"
    )
    func fuzzDecoder() throws {
        #expect(Self.seeds.count >= 7)
        var random = SplitMix64(seed: 0x1801)
        var decoded = 0
        var refused = 0
        for round in 0..<50_000 {
            var input: [UInt8]
            if round % 10 == 0 {
                input = (0..<Int.random(in: 0..<256, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            } else {
                input = Self.seeds.randomElement(using: &random)!
                for _ in 0..<Int.random(in: 1...4, using: &random) { input = Self.mutate(input, using: &random) }
            }
            do {
                let event = try EventDecoder.decode(input)
                decoded += 1
                #expect(try EventDecoder.decode(event.jsonBytes()) == event)
                let archived = try CloudEvent.archived(
                    subject: event.subject,
                    source: event.source,
                    id: event.id,
                    type: event.type.rawValue,
                    time: event.time,
                    recordedTime: event.recordedTime,
                    remainder: event.archivedRemainder()
                )
                #expect(archived == event)
                #expect(archived.jsonBytes() == event.jsonBytes())
            } catch {
                refused += 1
                #expect(!error.reason.isEmpty)
            }
            let batch = EventDecoder.decodeBatch(input + Array("\n".utf8) + input, maximumEvents: 1)
            #expect(batch.error != nil || batch.items.count == 1)
        }
        // The mutations must exercise both outcomes, or the test proves nothing.
        #expect(decoded > 1_000)
        #expect(refused > 10_000)
    }
}
