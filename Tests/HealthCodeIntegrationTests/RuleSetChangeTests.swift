import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Synchronization
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
        longer.ruleSet = try RuleSet.decode(try ReferenceRules.longer())
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
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
    }

    @Test("a running projector follows an activation: the next batch is decided by the rule set activated")
    func runningProjectorFollowsActivation() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let now = Instant.now()
        let subject = "c0ffee" + String(repeating: "1", count: 26)
        var contact = CloudEvent(
            id: "contact-2",
            source: "urn:hc:publisher:test-cdc",
            subject: subject,
            time: now - .seconds(20 * 86_400),
            payload: .exposure(Exposure(kind: .closeContact))
        )
        contact.recordedTime = contact.time
        var test = CloudEvent(
            id: "test-2",
            source: "urn:hc:publisher:test-health-bureau",
            subject: subject,
            time: now - .seconds(60),
            payload: .testResult(TestResult(test: .antigen, result: .negative, lab: "lab-1"))
        )
        test.recordedTime = test.time
        let longer = try ReferenceRules.longer()
        let longerHash = try RuleSet.decode(longer).contentHash
        let later = test
        try await publish([contact], to: backbone)
        // One projector run throughout: the activation happens while it runs.
        let activated = Mutex(false)
        try await backbone.runProjector(
            until: { client in
                let count = try await eventCount(of: subject, client)
                if count == 1, !activated.withLock({ $0 }) {
                    activated.withLock { $0 = true }
                    // As an operator does (`healthcode rules activate`), with the migrating role.
                    _ = try await backbone.withDatabase {
                        try await RuleSetVersionStore(client: $0, logger: testLogger())
                            .activate(body: longer, effectiveFrom: now - .seconds(3600), activatedBy: "ops-test")
                    }
                    try await publish([later], to: backbone)
                }
                return count == 2
            },
            gracefully: true
        )
        let decision = try await backbone.withDatabase { client in
            try await client.query(
                """
                SELECT c.decision::text || r.hash FROM person_code c JOIN rule_set r ON r.ref = c.rule_set
                WHERE c.subject = \(subject)
                """,
                logger: testLogger()
            ).decode(String.self).first { _ in true }
        }
        #expect(decision?.contains("close-contact") == true, "decided by the activated rule set's 28 days")
        #expect(decision?.hasSuffix(longerHash) == true, "and the decision names it")

        // The API judges what was known at an instant by the rules in force then, and names them.
        try await Backbone.withPostgres(backbone.clientConfiguration(for: .api), logger: testLogger()) { client in
            let logger = testLogger()
            let queries = Backbone.explanations(postgres: client, ruleSet: backbone.ruleSet, logger: logger).queries
            let answer = Instant.now()
            let before = try await queries.code(of: subject, at: answer, knownAt: now - .seconds(7200), now: answer)
            #expect(before.ruleSet.hash == backbone.ruleSet.contentHash)
            #expect(!before.reasons.contains { $0.rule == "close-contact" }, "14 days: the contact is over")
            let current = try await queries.code(of: subject, at: answer, knownAt: nil, now: answer)
            #expect(current.ruleSet.hash == longerHash)
            #expect(current.reasons.contains { $0.rule == "close-contact" })
        }
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
