import Testing

@testable import HealthCodeCore

@Suite("Evidence bundles")
struct EvidenceBundleTests {
    static let at = instant("2020-04-03T10:00:00Z")

    /// A history with something of everything: a designation, a journey into it, a retracted positive
    /// antigen, a test recorded after `knownAt` and a contact after `at`.
    static func history() -> (events: [CloudEvent], areas: [CloudEvent]) {
        var factory = EventFactory()
        factory.subject = String(repeating: "a", count: 32)
        let designated = at - day * 5
        let areas = [factory.designation("440106", .high, from: designated, issued: designated, recorded: designated)]
        func recorded(_ event: CloudEvent, _ instant: Instant? = nil) -> CloudEvent {
            var event = event
            event.recordedTime = instant ?? event.time
            return event
        }
        let antigen = recorded(factory.test(.antigen, .positive, at: at - day * 2, id: "antigen-1"))
        let events = [
            recorded(factory.travel(from: "110101", to: "440106", at: at - day * 3, arrivedAt: at - day * 3)),
            antigen,
            recorded(factory.retraction(of: "antigen-1", at: at - day)),
            recorded(factory.test(.pcr, .positive, at: at - hour * 2, id: "pcr-late"), at + hour),
            recorded(factory.exposure(.closeContact, at: at + day)),
        ]
        return (events, areas)
    }

    static func bundle(knownAt: Instant = at) throws -> EvidenceBundle {
        let (events, areas) = history()
        return try EvidenceBundle(
            subject: String(repeating: "a", count: 32),
            at: at,
            knownAt: knownAt,
            context: [("analyst", "analyst-1"), ("purpose", "case 3")],
            ruleSetFile: try Repository.bytes("projections/rules/reference-v1.json"),
            events: events,
            areaEvents: areas
        )
    }

    @Test("the result is the policy's; each event is marked counted or not, with why")
    func marks() throws {
        let bundle = try Self.bundle()
        let (events, areas) = Self.history()
        let expected = History(areas + events).evaluate(at: Self.at, knownAt: Self.at)
        #expect(bundle.decision == expected)
        #expect(bundle.decision.status != .green, "the journey into the high-risk area fires")
        let why = Dictionary(uniqueKeysWithValues: bundle.events.map { ($0.event.id, ($0.counted, $0.why)) })
        #expect(why["e0002"]?.0 == true && why["e0002"]?.1.hasPrefix("counted: rules ") == true)
        #expect(why["antigen-1"]?.1 == "counted, but retracted by urn:hc:publisher:test e0003")
        #expect(why["pcr-late"]?.0 == false && why["pcr-late"]?.1.contains("after knownAt") == true)
        #expect(why["e0004"]?.0 == false && why["e0004"]?.1.contains("after knownAt") == true)
        #expect(bundle.areaEvents.allSatisfy { $0.counted })
        // Known later, the late PCR counts and turns the code red.
        let later = try Self.bundle(knownAt: Self.at + day)
        #expect(later.decision.status == .red)
        #expect(later.events.first { $0.event.id == "pcr-late" }?.why.contains("positive-pcr") == true)
        let contact = later.events.first { $0.event.id == "e0004" }
        #expect(contact?.counted == false && contact?.why.contains("happens later") == true)
    }

    @Test("a written bundle verifies offline and re-makes the same result, marks and digest")
    func verifies() throws {
        let bundle = try Self.bundle()
        let verification = EvidenceVerification.verify(bundle.jsonBytes())
        #expect(verification.problems == [])
        #expect(verification.isVerified)
        #expect(verification.remade?.digest == bundle.digest)
        #expect(verification.remade?.decision == bundle.decision)
        #expect(verification.remade?.ruleSet.contentHash == Repository.referenceRuleSet.contentHash)
    }

    @Test("any change to an event, the rule set, a mark or the result is found and named")
    func tampering() throws {
        let text = String(decoding: try Self.bundle().jsonBytes(), as: UTF8.self)
        func problems(_ from: String, _ to: String) -> [String] {
            precondition(text.contains(from), "fixture: \(from)")
            let changed = text.replacingOccurrences(of: from, with: to)
            return EvidenceVerification.verify(Array(changed.utf8)).problems
        }
        // The retraction goes: the antigen counts again, the event's hash and the result change.
        let retraction = problems("\"retracts\":\"antigen-1\"", "\"retracts\":\"antigen-0\"")
        #expect(retraction.contains { $0.hasPrefix("events[2].sha256") })
        #expect(retraction.contains { $0.hasPrefix("events[1].why") })
        #expect(retraction.contains { $0.hasPrefix("digest") })
        let rules = problems("\\\"P14D\\\"", "\\\"P15D\\\"")
        #expect(rules.contains { $0.hasPrefix("ruleSet.hash is not the SHA-256 of ruleSet.file") })
        #expect(problems("\"counted\":false", "\"counted\":true").contains { $0.hasPrefix("events[3].counted") })
        let result = problems("\"result\":{\"subject\":", "\"result\":{\"note\":1,\"subject\":")
        #expect(result.contains { $0.hasPrefix("result differs") })
        #expect(!EvidenceVerification.verify(Array("[1]".utf8)).isVerified)
        #expect(EvidenceVerification.verify(Array("{".utf8)).problems.first?.hasPrefix("not JSON") == true)
        #expect(
            EvidenceVerification.verify(Array(#"{"format":"other"}"#.utf8)).problems
                == ["format must be healthcode-evidence/1"]
        )
    }
}
