import Foundation
import HealthCodeCore
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// States are pruned for the rule set in force (PersonState.prune): a projector restarted with a rule set that
/// keeps facts longer must not decide on what the earlier one left out.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .timeLimit(.minutes(3)))
struct RuleSetChangeTests {
    @Test("a projector restarted with a rule set that keeps facts longer folds pruned states anew from the archive")
    func longerRuleSetFoldsAnew() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let now = Instant.now()
        let day = Duration.seconds(86_400)
        let subject = "c0ffee" + String(repeating: "0", count: 26)
        func event(_ id: String, at time: Instant, _ payload: EventPayload, source: String) -> CloudEvent {
            var event = CloudEvent(id: id, source: source, subject: subject, time: time, payload: payload)
            event.recordedTime = time
            return event
        }
        // A close contact 20 days ago: past the reference rule set's 14 days, within 28.
        let contact = event(
            "contact-1",
            at: now - day * 20,
            .exposure(Exposure(kind: .closeContact)),
            source: "urn:hc:publisher:test-cdc"
        )
        try await publish([contact], to: backbone)
        try await backbone.runProjector(until: { try await eventCount(of: subject, $0) == 1 }, gracefully: true)
        let pruned = try await storedState(of: subject, backbone)
        #expect(pruned.heldEventCount == 0, "the reference rule set can no longer use the contact: it is left out")
        #expect(pruned.prunedFor == Policy(ruleSet: backbone.ruleSet).pruningSignature)

        var longer = backbone
        let rules = try String(
            contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent(
                "projections/rules/reference-v1.json"
            ),
            encoding: .utf8
        )
        longer.ruleSet = try RuleSet.decode(
            Array(
                rules.replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
                    .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"").utf8
            )
        )
        let policy = Policy(ruleSet: longer.ruleSet)
        #expect(policy.pruningSignature != pruned.prunedFor)
        let test = event(
            "test-1",
            at: now - .seconds(60),
            .testResult(TestResult(test: .antigen, result: .negative, lab: "lab-1")),
            source: "urn:hc:publisher:test-health-bureau"
        )
        try await publish([test], to: longer)
        try await longer.runProjector(until: { try await eventCount(of: subject, $0) == 2 }, gracefully: true)

        // The code is the longer rule set's over the whole history: the contact fires again.
        let decision = try await longer.withDatabase { client in
            try await client.query(
                "SELECT decision::text FROM person_code WHERE subject = \(subject)",
                logger: testLogger()
            ).decode(String.self).first { _ in true }
        }
        #expect(decision?.contains("close-contact") == true, "decided on the contact the state had left out")
        let refolded = try await storedState(of: subject, longer)
        #expect(refolded.prunedFor == policy.pruningSignature)
        #expect(refolded.heldEventCount == 2)
        let verdict = try await ProjectionVerifier.verify(longer)
        #expect(verdict.stateMismatches.isEmpty, "\(verdict.stateMismatches)")
        #expect(verdict.codeMismatches.isEmpty, "\(verdict.codeMismatches)")
    }

    func eventCount(of subject: String, _ client: PostgresClient) async throws -> Int {
        try await count(
            client,
            "SELECT coalesce(max(event_count), 0)::int8 FROM person_state WHERE subject = '\(subject)'"
        )
    }

    func storedState(of subject: String, _ backbone: TestBackbone) async throws -> PersonState {
        let json = try await backbone.withDatabase { client in
            try await client.query(
                "SELECT state::text FROM person_state WHERE subject = \(subject)",
                logger: testLogger()
            )
            .decode(String.self).first { _ in true }
        }
        return try PersonState(storedJSON: Array((json ?? "").utf8))
    }
}
