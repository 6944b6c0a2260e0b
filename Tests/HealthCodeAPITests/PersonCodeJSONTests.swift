import Foundation
import HealthCodeCore
import Testing

@testable import HealthCodeAPI

/// The hand-written code answer must be exactly what the `Encodable` form gives under `JSONResponse`'s
/// settings (sorted keys, unescaped slashes): the explanation endpoint embeds that form, and both answer
/// to the same OpenAPI schema.
struct PersonCodeJSONTests {
    static let subject = "0123456789abcdef0123456789abcdef"

    static func code(_ decision: CodeDecision) -> PersonCode {
        PersonCode(
            subject: subject,
            decision: decision,
            evaluatedAt: Instant(microsecondsSinceEpoch: 1_585_900_800_250_000),
            knownAt: Instant(microsecondsSinceEpoch: 1_585_900_800_000_000)
        )
    }

    static let decisions: [CodeDecision] = [
        CodeDecision(
            status: .green,
            validUntil: nil,
            reasons: [],
            ruleSetID: "reference-v1",
            ruleSetVersion: "1.0.0",
            ruleSetHash: "sha256:0e05"
        ),
        CodeDecision(
            status: .red,
            validUntil: Instant(microsecondsSinceEpoch: 1_586_000_000_000_000),
            reasons: [
                CodeReason(
                    rule: "positive-test",
                    colour: .red,
                    until: Instant(microsecondsSinceEpoch: 1_586_000_000_000_000),
                    events: [
                        EventReference(source: "urn:hc:publisher:bureau/wuhan", id: "pcr-1"),
                        EventReference(source: "urn:hc:publisher:bureau", id: "pcr \"2\" 中文"),
                    ]
                ),
                CodeReason(rule: "manual-review", colour: .yellow, until: nil, events: []),
            ],
            ruleSetID: "reference-v1",
            ruleSetVersion: "1.0.0",
            ruleSetHash: "sha256:0e05"
        ),
    ]

    @Test(arguments: decisions)
    func theAnswerIsTheEncodableFormByteForByte(decision: CodeDecision) throws {
        let code = Self.code(decision)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let encoded = String(decoding: try encoder.encode(code), as: UTF8.self)
        #expect(String(decoding: code.jsonBytes(), as: UTF8.self) == encoded)
    }
}
