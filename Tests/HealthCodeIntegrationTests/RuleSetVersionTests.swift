import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// Rule sets as audited versions (migration 0015): files kept by hash, activations insert-only, the version
/// in force at an instant.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .timeLimit(.minutes(2)))
struct RuleSetVersionTests {
    static func file(longer: Bool) throws -> [UInt8] {
        longer ? try ReferenceRules.longer() : try ReferenceRules.file()
    }

    @Test("activations are kept with who and when; the version in force at an instant is the latest effective")
    func activationsAndVersionInForce() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let start = Instant(rfc3339: "2020-04-01T00:00:00Z")!
        let day = Duration.seconds(86_400)
        try await backbone.withDatabase { client in
            let store = RuleSetVersionStore(client: client, logger: testLogger())
            let reference = try await store.activate(
                body: try Self.file(longer: false),
                effectiveFrom: start,
                activatedBy: "ops-1"
            )
            let longer = try await store.activate(
                body: try Self.file(longer: true),
                effectiveFrom: start + day * 10,
                activatedBy: "ops-2"
            )
            #expect(reference.ruleSet == backbone.ruleSet.identity)
            #expect(longer.ruleSet.version == "1.1.0" && longer.ruleSet.hash != reference.ruleSet.hash)
            #expect(try await store.activations() == [reference, longer])
            #expect(reference.activatedBy == "ops-1" && !reference.databaseRole.isEmpty)
            #expect(try await store.activation(at: start - .seconds(1)) == nil)
            #expect(try await store.activation(at: start + day) == reference)
            #expect(try await store.activation(at: start + day * 10) == longer)
            // Activated again later with an earlier effective instant: the later activation wins a tie only.
            let again = try await store.activate(
                body: try Self.file(longer: false),
                effectiveFrom: start + day * 10,
                activatedBy: "ops-3"
            )
            #expect(try await store.activation(at: start + day * 12) == again)
            // What services read to follow activations: all three, oldest first, with their files.
            let catalog = RuleSetCatalog(
                source: store,
                configured: Policy(ruleSet: backbone.ruleSet),
                logger: testLogger()
            )
            try await catalog.refresh(from: store)
            #expect(catalog.policy(at: start + day * 5).ruleSet.contentHash == reference.ruleSet.hash)
            #expect(catalog.policy(at: start + day * 12).ruleSet.contentHash == again.ruleSet.hash)
            #expect(try await store.activations(after: again.activationID).isEmpty)
            let longerFile = try Self.file(longer: true)
            #expect(try await store.body(ofHash: longer.ruleSet.hash) == longerFile)

            // A file that is not a rule set is refused, naming what is wrong, and records nothing.
            await #expect(throws: RuleSetError.self) {
                _ = try await store.activate(
                    body: Array(#"{"id":"x"}"#.utf8),
                    effectiveFrom: start,
                    activatedBy: "ops-1"
                )
            }
            #expect(try await store.activations().count == 3)

            // The history of activations cannot be rewritten, not even by the migrating role.
            await #expect(throws: (any Error).self) {
                try await client.query("DELETE FROM rule_set_activation", logger: testLogger())
            }
            await #expect(throws: (any Error).self) {
                try await client.query("UPDATE rule_set_activation SET activated_by = 'x'", logger: testLogger())
            }
        }
        try await Backbone.withPostgres(backbone.clientConfiguration(for: .api), logger: testLogger()) { client in
            let activations = try await RuleSetVersionStore(client: client, logger: testLogger()).activations()
            #expect(activations.count == 3)
            await #expect(throws: (any Error).self) {
                try await client.query(
                    "INSERT INTO rule_set_activation (rule_set, effective_from, activated_by) VALUES (1, now(), 'api')",
                    logger: testLogger()
                )
            }
            // The console decides held changes through hc_decide_held_change only: never by writing them.
            await #expect(throws: (any Error).self) {
                try await client.query("UPDATE held_change SET status = 'approved'", logger: testLogger())
            }
        }
    }
}
