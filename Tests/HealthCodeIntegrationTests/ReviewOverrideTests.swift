import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// Overrides beyond the hourly quota are held for a second officer, end to end: gateway, PostgreSQL,
/// Kafka, projector.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(5)))
struct ReviewOverrideTests {
    static let office = "urn:hc:publisher:test-bureau"

    static func review(id: String, subject: String, officer: String) -> String {
        let validUntil = ISO8601DateFormatter().string(from: Date().addingTimeInterval(7 * 86_400))
        return
            #"{"specversion":"1.0","id":"\#(id)","source":"\#(office)","type":"hc.review.v1","subject":"\#(subject)","time":"\#(Events.hoursAgo(1))","data":{"status":"red","validUntil":"\#(validUntil)","reason":"bulk","officer":"\#(officer)"}}"#
    }

    @Test("1,000 overrides of one officer: the quota applies, the rest is held until a second officer decides")
    func bulkOverridesHeld() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withDatabase { client in
            let store = ReviewOfficeStore(client: client, logger: testLogger())
            try await store.addOfficer("officer-a", office: Self.office)
            try await store.addOfficer("officer-b", office: Self.office)
            await #expect(throws: RegistryError.self) { try await store.addOfficer("officer-a", office: Self.office) }
            await #expect(throws: RegistryError.self) {
                try await store.addOfficer("officer-c", office: "urn:hc:publisher:nobody")
            }
        }
        try await backbone.withRunningBackbone(
            configureGateway: {
                $0.overridesPerOfficerPerHour = 100
                $0.overridesPerOfficePerHour = 1000
                $0.heldReviewInterval = .seconds(3600)  // only at start: this test releases by approval
            },
            { gateway, _, probe in
                let lines = (0..<1000).map { Self.review(id: "rv-\($0)", subject: "REV-\($0)", officer: "officer-a") }
                let answer = try await HTTP.post(gateway + "/v1/events", ndjson: lines)
                #expect(answer.status == 202)
                #expect(answer.json["accepted"] as? Int == 100)
                #expect(answer.json["held"] as? Int == 900)
                let results = answer.json["results"] as? [[String: Any]] ?? []
                #expect(results.prefix(100).allSatisfy { $0["status"] as? String == "accepted" })
                #expect(results.suffix(900).allSatisfy { $0["status"] as? String == "held" && $0["heldId"] is Int })

                let unregistered = try await HTTP.post(
                    gateway + "/v1/events",
                    ndjson: [Self.review(id: "rv-x", subject: "REV-X", officer: "officer-x")]
                )
                #expect(unregistered.status == 422)
                let problem = (unregistered.json["results"] as? [[String: Any]])?.first?["errors"] as? [[String: Any]]
                #expect(problem?.first?["code"] as? String == "unregistered-officer")

                try await probe.waitUntilCaughtUp()
                let client = probe.client
                #expect(try await count(client, "SELECT count(*) FROM decision_log WHERE new_status = 'red'") == 100)
                #expect(try await count(client, "SELECT count(*) FROM held_review WHERE status = 'held'") == 900)
                // Held events are kept pseudonymised: no raw identifier.
                #expect(try await count(client, "SELECT count(*) FROM held_review WHERE event LIKE '%REV-%'") == 0)

                let held = try await ReviewOfficeStore(client: client, logger: testLogger()).held()
                let toApprove = held.prefix(50).map(\.id)
                let toReject = held.dropFirst(50).prefix(50).map(\.id)
                // The second-officer rule: not the officer who made them, not an unregistered one.
                func decide(
                    _ ids: [Int64],
                    _ approve: Bool,
                    _ officer: String
                ) async throws -> (refusals: [Int64: HeldReviewRefusal], release: HeldReviewRelease.Outcome?) {
                    try await Backbone.decideHeldReviews(
                        ids,
                        approve: approve,
                        officer: officer,
                        topic: backbone.topic,
                        postgres: client,
                        logger: testLogger()
                    )
                }
                let own = try await decide(toApprove, true, "officer-a")
                #expect(own.refusals.count == 50 && own.refusals.values.allSatisfy { $0 == .sameOfficer })
                let stranger = try await decide(toApprove, true, "officer-x")
                #expect(stranger.refusals.values.allSatisfy { $0 == .unregisteredOfficer })
                // An approval stored but not appended (a crash in between) is appended by the next approval.
                try await client.query(
                    """
                    UPDATE held_review SET status = 'approved', decided_by = 'officer-b', decided_at = now()
                    WHERE held_id = \(toApprove[0])
                    """,
                    logger: testLogger()
                )
                let approved = try await decide(Array(toApprove.dropFirst()), true, "officer-b")
                #expect(approved.refusals.isEmpty)
                #expect(approved.release?.published == 50)
                let rejected = try await decide(toReject, false, "officer-b")
                #expect(rejected.refusals.isEmpty)
                #expect(try await decide(toReject, true, "officer-b").refusals.values.allSatisfy { $0 == .notHeld })

                try await probe.waitUntilCaughtUp()
                #expect(try await count(client, "SELECT count(*) FROM decision_log WHERE new_status = 'red'") == 150)
                // The decision log names the approved event as its cause; that event carries the approver.
                let byApprover = """
                    SELECT count(*) FROM decision_log d
                    JOIN event_archive e ON e.subject = d.subject AND e.source = d.trigger_source AND e.event_id = d.trigger_id
                    WHERE d.new_status = 'red' AND e.body->'data'->>'approvedBy' = 'officer-b'
                        AND e.body->'data'->>'officer' = 'officer-a' AND (e.body->'data'->>'approvedAt') IS NOT NULL
                    """
                #expect(try await count(client, byApprover) == 50)
                // Rejected overrides were never applied.
                let rejectedEvents = held.dropFirst(50).prefix(50).map(\.eventID)
                let applied = try await client.query(
                    "SELECT count(*) FROM event_archive WHERE event_id = ANY(\(rejectedEvents))",
                    logger: testLogger()
                )
                for try await n in applied.decode(Int64.self) { #expect(n == 0) }
                #expect(try await count(client, "SELECT count(*) FROM held_review WHERE status = 'held'") == 800)
                #expect(
                    try await count(client, "SELECT count(*) FROM held_review WHERE published_at IS NOT NULL") == 50
                )
                let audit = "SELECT count(*) FROM review_audit WHERE officer_id = 'officer-b' AND action = "
                #expect(try await count(client, audit + "'approved'") == 49)
                #expect(try await count(client, audit + "'rejected'") == 50)
                await #expect(throws: (any Error).self) {
                    try await client.query("DELETE FROM review_audit", logger: testLogger())
                }
            }
        )
    }

    @Test("client assertions are used once across gateways: the second use of a jti is refused")
    func assertionUsesAreShared() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withDatabase { client in
            let store = AssertionUseStore(client: client, logger: testLogger())
            let expiry = Instant.now() + .seconds(60)
            #expect(try await store.recordFirstUse(issuer: "urn:hc:publisher:x", jti: "j-1", expiresAt: expiry))
            #expect(try await !store.recordFirstUse(issuer: "urn:hc:publisher:x", jti: "j-1", expiresAt: expiry))
            #expect(try await store.recordFirstUse(issuer: "urn:hc:publisher:y", jti: "j-1", expiresAt: expiry))
            let past = Instant.now() - .seconds(1)
            #expect(try await store.recordFirstUse(issuer: "urn:hc:publisher:x", jti: "j-old", expiresAt: past))
            try await store.forgetExpired()
            #expect(try await count(client, "SELECT count(*) FROM client_assertion_use") == 2)
        }
    }
}
