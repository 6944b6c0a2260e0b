import Crypto
import Foundation
import Testing

@testable import HealthCodeCore

@Suite("Rule sets")
struct RuleSetTests {
    static func referenceText() throws -> String {
        String(decoding: try Repository.bytes("projections/rules/reference-v1.json"), as: UTF8.self)
    }

    @Test func referenceRuleSetDecodesWithIdentityAndHash() throws {
        let bytes = try Repository.bytes("projections/rules/reference-v1.json")
        let ruleSet = try RuleSet.decode(bytes)
        #expect(ruleSet.id == "reference-v1")
        #expect(ruleSet.version == "1.0.0")
        let hex = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        #expect(ruleSet.contentHash == "sha256:" + hex)
        #expect(
            ruleSet.rules.map(\.name) == [
                "review", "positive-pcr", "recovery-observation", "positive-antigen", "close-contact",
                "secondary-contact", "high-risk-presence", "medium-risk-presence", "symptoms",
            ]
        )
        #expect(ruleSet.precedence == [.red, .yellow, .green])
    }

    @Test func changingCloseContactTo10DaysIsAnEditOfTheFile() throws {
        let edited = try Self.referenceText()
            .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"")
            .replacingOccurrences(
                of: "\"exposure\": \"close-contact\",\n      \"duration\": \"P14D\"",
                with: "\"exposure\": \"close-contact\",\n      \"duration\": \"P10D\""
            )
        let ruleSet = try RuleSet.decode(Array(edited.utf8))
        #expect(ruleSet.version == "1.1.0")
        #expect(ruleSet.contentHash != Repository.referenceRuleSet.contentHash)
        let t0 = instant("2020-04-01T00:00:00Z")
        var events = EventFactory()
        let history = History([events.exposure(.closeContact, at: t0)])
        let decision = history.evaluate(at: t0, policy: Policy(ruleSet: ruleSet))
        #expect(decision.validUntil == t0 + day * 10)
        #expect(decision.ruleSetVersion == "1.1.0")
        #expect(decision.ruleSetHash == ruleSet.contentHash)
    }

    @Test func thresholdsAndColoursAreData() throws {
        let edited = try Self.referenceText()
            .replacingOccurrences(of: "\"temperatureAtLeastCelsius\": 37.3", with: "\"temperatureAtLeastCelsius\": 38")
            .replacingOccurrences(of: "\"minimumGap\": \"PT24H\"", with: "\"minimumGap\": \"PT12H\"")
            .replacingOccurrences(
                of: "\"colour\": \"yellow\",\n      \"exposure\": \"secondary-contact\"",
                with: "\"colour\": \"red\",\n      \"exposure\": \"secondary-contact\""
            )
        let policy = Policy(ruleSet: try RuleSet.decode(Array(edited.utf8)))
        let t0 = instant("2020-04-01T00:00:00Z")
        var events = EventFactory()
        #expect(
            History([events.declaration([], temperature: 37.5, at: t0)]).evaluate(at: t0, policy: policy).status
                == .green
        )
        #expect(History([events.exposure(.secondaryContact, at: t0)]).evaluate(at: t0, policy: policy).status == .red)
        let cleared = History([
            events.test(.pcr, .positive, at: t0),
            events.test(.pcr, .negative, at: t0 + hour),
            events.test(.pcr, .negative, at: t0 + hour * 13),
        ])
        #expect(cleared.evaluate(at: t0 + day, policy: policy).status == .yellow)
    }

    @Test(
        arguments: [
            ("{\"id\": 1}", "id", EventValidationError.Code.wrongType),
            ("[]", "", .wrongType),
            ("{", "", .malformedJSON),
        ]
    )
    func malformedFilesNameTheField(text: String, field: String, code: EventValidationError.Code) {
        #expect(throws: RuleSetError.self) { try RuleSet.decode(Array(text.utf8)) }
        do {
            _ = try RuleSet.decode(Array(text.utf8))
        } catch {
            #expect(error.fieldPath == field)
            #expect(error.code == code)
        }
    }

    /// Each edit breaks one field of the reference file; the error must name exactly that field.
    @Test(
        arguments: [
            ("\"version\": \"1.0.0\"", "\"version\": \"1.0\"", "version"),
            ("\"id\": \"reference-v1\"", "\"id\": \"Reference V1\"", "id"),
            ("\"precedence\": [\"red\", \"yellow\", \"green\"]", "\"precedence\": [\"red\", \"yellow\"]", "precedence"),
            (
                "\"areaLevels\": [\"low\", \"medium\", \"high\"]", "\"areaLevels\": [\"low\", \"low\", \"high\"]",
                "areaLevels[1]"
            ),
            ("\"duration\": \"P7D\"", "\"duration\": \"P1W\"", "rules[5].duration"),
            (
                "\"duration\": \"P14D\",\n      \"cancelledByNegative\": \"pcr\"\n    }\n  ]",
                "\"duration\": \"-P14D\",\n      \"cancelledByNegative\": \"pcr\"\n    }\n  ]", "rules[8].duration"
            ),
            ("\"minimumGap\": \"PT24H\"", "\"minimumGap\": \"PT24H\", \"extra\": 1", "rules[1].clearance.extra"),
            (
                "\"colour\": \"red\",\n      \"test\": \"pcr\"", "\"colour\": \"crimson\",\n      \"test\": \"pcr\"",
                "rules[1].colour"
            ),
            ("\"after\": \"positive-pcr\"", "\"after\": \"positive-antigen\"", "rules[2].after"),
            ("\"kind\": \"symptoms\"", "\"kind\": \"cough\"", "rules[8].kind"),
            (
                "\"temperatureAtLeastCelsius\": 37.3", "\"temperatureAtLeastCelsius\": \"37.3\"",
                "rules[8].temperatureAtLeastCelsius"
            ),
            ("\"name\": \"secondary-contact\"", "\"name\": \"close-contact\"", "rules[5].name"),
            ("\"areaLevel\": \"high\"", "\"areaLevel\": \"high\", \"colour2\": \"red\"", "rules[6].colour2"),
        ]
    )
    func brokenFieldsAreNamed(original: String, replacement: String, field: String) throws {
        let text = try Self.referenceText()
        #expect(text.contains(original), "fixture must match the reference file")
        let broken = text.replacingOccurrences(of: original, with: replacement)
        do {
            _ = try RuleSet.decode(Array(broken.utf8))
            Issue.record("accepted a rule set with a broken \(field)")
        } catch {
            #expect(error.fieldPath == field, "\(error)")
            #expect(error.description.hasPrefix(field + ": "))
        }
    }

    @Test(
        arguments: [
            ("P14D", Int64(14 * 86_400)), ("PT24H", 86_400), ("P1DT12H", 129_600), ("PT90M", 5_400), ("PT30S", 30),
            ("P", nil), ("PT", nil), ("P1DT", nil), ("P1M", nil), ("PT1D", nil), ("P1H", nil), ("14D", nil),
            ("PT1M1H", nil), ("P1.5D", nil),
        ]
    )
    func durations(text: String, seconds: Int64?) {
        let ruleSetText = (try? Self.referenceText()) ?? ""
        let edited = ruleSetText.replacingOccurrences(of: "\"duration\": \"P7D\"", with: "\"duration\": \"\(text)\"")
        let parsed = try? RuleSet.decode(Array(edited.utf8))
        if let seconds {
            guard case .exposure(_, _, let duration)? = parsed?.rules[5].kind else {
                Issue.record("\(text) rejected")
                return
            }
            #expect(duration == .seconds(seconds))
        } else {
            #expect(parsed == nil, "\(text) accepted")
        }
    }
}
