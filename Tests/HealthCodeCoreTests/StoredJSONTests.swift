import Testing

@testable import HealthCodeCore

/// The stored JSON of states and decisions: what the projector writes, what the API and the projector read
/// back, and rows written by earlier releases (Foundation's encoder, keys sorted, then normalised by jsonb).
struct StoredJSONTests {
    /// A state row as an earlier release stored it (taken from a demo database, read back as `state::text`).
    static let earlierState = """
        {"tests": [{"test": "pcr", "stamp": {"id": "demo-pcr-400", "time": "2026-11-28T06:54:28Z", \
        "source": "urn:hc:publisher:demo-health-bureau", "recorded": "2026-11-29T03:22:14.020465Z"}, \
        "result": "negative"}], "reviews": [], "travels": [{"to": "440103", "from": "310104", "stamp": \
        {"id": "demo-travel-400", "time": "2026-11-27T01:09:31Z", "source": "urn:hc:publisher:demo-transport", \
        "recorded": "2026-11-29T03:22:14.020465Z"}, "arrivedAt": "2026-11-27T06:09:31Z"}], "exposures": \
        [{"kind": "close-contact", "stamp": {"id": "demo-exposure-400", "time": "2026-11-27T10:53:25Z", \
        "source": "urn:hc:publisher:demo-cdc", "recorded": "2026-11-29T03:22:14.020465Z"}}], "retractions": \
        [{"stamp": {"id": "retract-w-20-0", "time": "2026-11-29T06:32:39.720017Z", "source": \
        "urn:hc:publisher:demo-residents", "recorded": "2026-11-29T06:32:39.720017Z"}, "retracts": "w-20-0"}], \
        "declarations": [{"stamp": {"id": "demo-decl-400", "time": "2026-11-27T21:18:54Z", "source": \
        "urn:hc:publisher:demo-residents", "recorded": "2026-11-29T03:22:14.020465Z"}, "location": "310104", \
        "symptoms": [], "temperatureCelsius": 36.6}, {"stamp": {"id": "w-20-3", "time": \
        "2026-11-27T21:36:03.720017Z", "source": "urn:hc:publisher:demo-residents", "recorded": \
        "2026-11-29T06:32:39.720017Z"}, "symptoms": ["fever", "cough"]}]}
        """

    /// A decision row as an earlier release stored it.
    static let earlierDecision = """
        {"status": "yellow", "reasons": [{"rule": "medium-risk-presence", "until": "2026-12-04T21:19:11Z", \
        "colour": "yellow", "events": [{"id": "demo-area-medium-310100", "source": \
        "urn:hc:publisher:demo-state-council"}, {"id": "demo-decl-7", "source": "urn:hc:publisher:demo-residents"}]}, \
        {"rule": "symptoms", "until": "2026-12-11T21:19:11Z", "colour": "yellow", "events": [{"id": "demo-decl-7", \
        "source": "urn:hc:publisher:demo-residents"}]}], "ruleSetID": "reference-v1", "validUntil": \
        "2026-12-11T21:19:11Z", "ruleSetHash": \
        "sha256:0e0568db8a5d80dba1239475cdcf39a4929eeafc3db7e2d3b32aae0399be8baa", "ruleSetVersion": "1.0.0"}
        """

    @Test func stateRowsOfEarlierReleasesReadBack() throws {
        let state = try PersonState(storedJSON: Array(Self.earlierState.utf8))
        #expect(state.eventCount == 6)
        #expect(state.tests.map(\.result) == [.negative])
        #expect(state.tests.first?.stamp.recorded == instant("2026-11-29T03:22:14.020465Z"))
        #expect(state.travels.map(\.to) == [AreaCode("440103")!])
        #expect(state.travels.first?.arrivedAt == instant("2026-11-27T06:09:31Z"))
        #expect(state.exposures.map(\.kind) == [.closeContact])
        #expect(state.retractions.map(\.retracts) == ["w-20-0"])
        #expect(state.declarations.map(\.temperatureCelsius) == [36.6, nil])
        #expect(state.declarations.map(\.location) == [AreaCode("310104"), nil])
        #expect(state.declarations.last?.symptoms == [.fever, .cough])
        #expect(state.visitedAreas == [AreaCode("310104")!, AreaCode("440103")!])
        #expect(try PersonState(storedJSON: state.storedJSON()) == state)
    }

    /// The rule set of ``earlierDecision``, as its row references it since schema 14.
    static let earlierRuleSet = RuleSetIdentity(
        id: "reference-v1",
        version: "1.0.0",
        hash: "sha256:0e0568db8a5d80dba1239475cdcf39a4929eeafc3db7e2d3b32aae0399be8baa"
    )

    @Test func decisionRowsOfEarlierReleasesReadBack() throws {
        let decision = try CodeDecision(storedJSON: Array(Self.earlierDecision.utf8), ruleSet: Self.earlierRuleSet)
        #expect(decision.status == .yellow)
        #expect(decision.validUntil == instant("2026-12-11T21:19:11Z"))
        #expect(decision.reasons.map(\.rule) == ["medium-risk-presence", "symptoms"])
        #expect(decision.reasons.first?.until == instant("2026-12-04T21:19:11Z"))
        #expect(
            decision.reasons.first?.events == [
                EventReference(source: "urn:hc:publisher:demo-state-council", id: "demo-area-medium-310100"),
                EventReference(source: "urn:hc:publisher:demo-residents", id: "demo-decl-7"),
            ]
        )
        #expect(decision.ruleSetID == "reference-v1")
        #expect(decision.ruleSetVersion == "1.0.0")
        #expect(decision.ruleSetHash.hasPrefix("sha256:0e0568db"))
        #expect(try CodeDecision(storedJSON: decision.storedJSON(), ruleSet: decision.ruleSet) == decision)
    }

    @Test func storedDecisionsReferenceTheirRuleSetInsteadOfRepeatingIt() throws {
        let decision = try CodeDecision(storedJSON: Array(Self.earlierDecision.utf8), ruleSet: Self.earlierRuleSet)
        let stored = String(decoding: decision.storedJSON(), as: UTF8.self)
        #expect(!stored.contains("ruleSet"))
        #expect(!stored.contains("sha256"))
        #expect(stored.utf8.count < Self.earlierDecision.utf8.count - 150)
        let other = RuleSetIdentity(id: "other", version: "2", hash: "sha256:ff")
        #expect(try CodeDecision(storedJSON: decision.storedJSON(), ruleSet: other).ruleSet == other)
    }

    @Test func statesAndDecisionsSurviveTheirStoredJSON() throws {
        var decisions = 0
        var withReasons = 0
        var generator = SplitMix64(seed: 11)
        for events in PolicyPropertyTests.histories().prefix(200) {
            let history = History(events)
            #expect(try PersonState(storedJSON: history.person.storedJSON()) == history.person)
            for at in PolicyPropertyTests.probes(events, using: &generator) {
                let decision = history.evaluate(at: at, knownAt: at)
                #expect(try CodeDecision(storedJSON: decision.storedJSON(), ruleSet: decision.ruleSet) == decision)
                decisions += 1
                if !decision.reasons.isEmpty { withReasons += 1 }
            }
        }
        #expect(decisions > 500)
        #expect(withReasons > 100)
    }

    @Test func stringsWithEscapesSurvive() throws {
        let decision = CodeDecision(
            status: .red,
            validUntil: nil,
            reasons: [
                CodeReason(
                    rule: "quote \" backslash \\ newline \n tab \t nul \u{0} 中文 😷",
                    colour: .red,
                    until: nil,
                    events: [EventReference(source: "urn:x:\u{7F}", id: "/id")]
                )
            ],
            ruleSetID: "r",
            ruleSetVersion: "1",
            ruleSetHash: "sha256:00"
        )
        #expect(try CodeDecision(storedJSON: decision.storedJSON(), ruleSet: decision.ruleSet) == decision)
    }

    @Test(arguments: [
        ("{\"tests\":[]}", "travels", "is missing"),
        ("[]", "", "must be an object, not an array"),
        ("{\"tests\":", "", "not JSON"),
        (
            "{\"tests\":[{\"stamp\":{\"source\":\"s\",\"id\":\"i\",\"time\":\"yesterday\",\"recorded\":\"x\"},"
                + "\"test\":\"pcr\",\"result\":\"negative\"}]}",
            "tests[0].stamp.time", "must be an RFC 3339 instant"
        ),
        (
            "{\"tests\":[],\"travels\":[{\"stamp\":{\"source\":\"s\",\"id\":\"i\",\"time\":\"2020-04-01T00:00:00Z\","
                + "\"recorded\":\"2020-04-01T00:00:00Z\"},\"from\":\"1\",\"to\":\"440103\","
                + "\"arrivedAt\":\"2020-04-01T00:00:00Z\"}]}",
            "travels[0].from", "must be a 6-digit area code"
        ),
    ])
    func unreadableStatesNameTheField(json: String, field: String, reason: String) {
        #expect {
            try PersonState(storedJSON: Array(json.utf8))
        } throws: { error in
            guard let error = error as? StoredJSONError else { return false }
            return error.document == "person-state" && error.field == field && error.reason.hasPrefix(reason)
        }
    }

    @Test func aStateHoldingAnEventTwiceIsRefusedWithoutEchoingIt() throws {
        var state = PersonState()
        let event = CloudEvent(
            id: "secret-id-1",
            source: "urn:hc:publisher:test-cdc",
            subject: String(repeating: "a", count: 32),
            time: instant("2020-04-01T00:00:00Z"),
            payload: .exposure(Exposure(kind: .closeContact))
        )
        state.apply(event)
        var twice = state
        twice.exposures.append(twice.exposures[0])
        let error = #expect(throws: StoredJSONError.self) {
            try PersonState(storedJSON: twice.storedJSON())
        }
        #expect(error?.reason == "an event appears twice in the state")
        #expect(error.map { !"\($0)".contains("secret-id-1") } == true)
    }

    @Test func unknownColoursAreRefused() {
        let json = Self.earlierDecision.replacingOccurrences(of: "\"status\": \"yellow\"", with: "\"status\": \"blue\"")
        let error = #expect(throws: StoredJSONError.self) {
            try CodeDecision(storedJSON: Array(json.utf8), ruleSet: Self.earlierRuleSet)
        }
        #expect(error?.field == "status")
        #expect(error?.document == "code-decision")
    }
}
