import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Synchronization
import Testing

/// The blast radius of a change before go-live, and the second operator it needs when it would turn many red.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(5)))
struct ImpactTests {
    static let source = "urn:hc:publisher:test-cdc"

    /// The reference rule set with 28-day contact and observation windows (version 1.1.0).
    static func longerFile() throws -> [UInt8] {
        let reference = try String(
            contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent(
                "projections/rules/reference-v1.json"
            ),
            encoding: .utf8
        )
        return Array(
            reference.replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
                .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"").utf8
        )
    }

    /// People with a close contact 20 days ago (pruned from their states under 14 days), travellers into
    /// 440106 a day ago (no designation: nothing fires), people with a positive PCR and people with a positive
    /// antigen test (yellow): by subject.
    static func population(now: Instant) -> [String: [CloudEvent]] {
        var people: [String: [CloudEvent]] = [:]
        for index in 0..<120 {
            let subject = String(format: "%02x", index * 2) + String(repeating: "5", count: 30)
            let time = now - .seconds(Int64(index % 4 == 0 ? 20 : index % 4 == 1 ? 1 : 3) * 86_400)
            let payload: EventPayload
            switch index % 4 {
            case 0: payload = .exposure(Exposure(kind: .closeContact))
            case 1:
                payload = .travel(
                    Travel(mode: .train, from: AreaCode("110101")!, to: AreaCode("440106")!, arrivedAt: time)
                )
            case 2: payload = .testResult(TestResult(test: .pcr, result: .positive, lab: "lab-1"))
            default: payload = .testResult(TestResult(test: .antigen, result: .positive, lab: "lab-1"))
            }
            var event = CloudEvent(id: "e-\(index)", source: source, subject: subject, time: time, payload: payload)
            event.recordedTime = time
            people[subject] = [event]
        }
        return people
    }

    func projected(_ people: [String: [CloudEvent]]) async throws -> TestBackbone {
        let backbone = try await TestBackbone.make(partitions: 2)
        try await publish(people.values.flatMap { $0 }, to: backbone)
        try await backbone.runProjector(
            until: { try await count($0, "SELECT count(*) FROM person_state") == people.count },
            gracefully: true
        )
        return backbone
    }

    @Test("the impact of a rule set over everyone is what evaluating each whole history gives, on any workers")
    func impactOfRules() async throws {
        let now = Instant.now()
        let people = Self.population(now: now)
        let backbone = try await projected(people)
        let longer = try Self.longerFile()
        try await backbone.withDatabase { client in
            let pruned = try await count(
                client,
                "SELECT count(*) FROM person_state WHERE state::text LIKE '%prunedFor%'"
            )
            #expect(pruned >= 30, "the old contacts were pruned under 14 days: they must be folded anew")
            let comparison = try await Backbone.comparison(
                of: .ruleSet(file: longer, effectiveFrom: now),
                at: now,
                postgres: client,
                configured: backbone.ruleSet,
                logger: testLogger()
            )
            var expected = ImpactReport()
            for (subject, events) in people {
                var state = PersonState()
                for event in events { state.apply(event) }
                comparison.compare(state, of: subject, into: &expected)
            }
            let progress = Counter()
            let impact = PopulationImpact(postgres: client, logger: testLogger())
            let report = try await impact.report(comparison, workers: 2) { progress.add($0) }
            #expect(report == expected)
            #expect(report.people == 120 && progress.value == 120)
            #expect(report.turningRed == 30, "every contact of 20 days ago: red for 28 days")
            #expect(report.byTransition == [.init(from: .green, to: .red): 30])
            #expect(try await impact.report(comparison, workers: 1) == report)
        }
    }

    @Test("an activation turning more than the threshold red is held until another operator approves it")
    func heldActivation() async throws {
        let now = Instant.now()
        let backbone = try await projected(Self.population(now: now))
        let longer = try Self.longerFile()
        try await backbone.withDatabase { client in
            let logger = testLogger()
            func propose(threshold: Int) async throws -> RuleSetProposal {
                try await Backbone.proposeRuleSet(
                    file: longer,
                    effectiveFrom: now,
                    by: "ops-1",
                    threshold: threshold,
                    workers: 2,
                    postgres: client,
                    configured: backbone.ruleSet,
                    logger: logger
                )
            }
            let store = HeldChangeStore(client: client, logger: logger)
            let versions = RuleSetVersionStore(client: client, logger: logger)
            guard case .held(let id, let report) = try await propose(threshold: 29) else {
                Issue.record("30 turning red over 29 must be held")
                return
            }
            #expect(report.turningRed == 30)
            #expect(try await versions.activations().isEmpty, "held, not activated")
            let held = try await store.changes(includeDecided: false)
            #expect(held.map(\.id) == [id] && held.first?.turningRed == 30 && held.first?.threshold == 29)
            await #expect { try await store.decide(id, approve: true, by: "ops-1") } throws: {
                ($0 as? HeldChangeRefusal)?.code == "same-operator"
            }
            let approved = try await store.decide(id, approve: true, by: "ops-2")
            #expect(approved.status == .approved && approved.decidedBy == "ops-2")
            let activations = try await versions.activations()
            #expect(activations.map(\.activatedBy) == ["ops-1, approved by ops-2 (held change #\(id))"])
            #expect(activations.first?.ruleSet.version == "1.1.0")
            await #expect { try await store.decide(id, approve: false, by: "ops-3") } throws: {
                ($0 as? HeldChangeRefusal)?.code == "decided"
            }
            // Now in force, the same file changes nobody: activated at once.
            guard case .activated(_, let again) = try await propose(threshold: 0) else {
                Issue.record("a change turning nobody red is not held")
                return
            }
            #expect(again.changed == 0)
            // A rejected change is never applied; the record cannot be rewritten or removed.
            let stricter = String(decoding: longer, as: UTF8.self).replacingOccurrences(
                of: "\"colour\": \"yellow\",\n      \"test\": \"antigen\"",
                with: "\"colour\": \"red\",\n      \"test\": \"antigen\""
            ).replacingOccurrences(of: "\"version\": \"1.1.0\"", with: "\"version\": \"1.2.0\"")
            guard
                case .held(let rejectedID, let stricterReport) = try await Backbone.proposeRuleSet(
                    file: Array(stricter.utf8),
                    effectiveFrom: now,
                    by: "ops-1",
                    threshold: 0,
                    workers: 1,
                    postgres: client,
                    configured: backbone.ruleSet,
                    logger: logger
                )
            else {
                Issue.record("positive antigen tests turning red must be held")
                return
            }
            #expect(stricterReport.byTransition == [.init(from: .yellow, to: .red): 30])
            #expect(try await store.decide(rejectedID, approve: false, by: "ops-2").status == .rejected)
            #expect(try await versions.activations().count == 2)
            for statement in [
                "UPDATE held_change SET turning_red = 0 WHERE held_id = \(id)",
                "UPDATE held_change SET status = 'held', decided_by = NULL WHERE held_id = \(rejectedID)",
                "DELETE FROM held_change WHERE held_id = \(id)",
            ] {
                await #expect(throws: PSQLError.self, "\(statement)") {
                    try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
        }
    }

    @Test("healthcode impact, rules activate with a hold and approvals, as operators run them")
    func commands() async throws {
        let now = Instant.now()
        let backbone = try await projected(Self.population(now: now))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            LocalInfrastructure.uniqueName("impact")
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let rules = directory.appendingPathComponent("longer.json")
        try Data(try Self.longerFile()).write(to: rules)
        let designation = directory.appendingPathComponent("designation.json")
        let issued = (now - .seconds(3600)).rfc3339Seconds
        try Data(
            #"{"specversion":"1.0","id":"d1","source":"urn:hc:publisher:test-state-council","type":"hc.risk-area.v1","subject":"440106","time":"\#(issued)","data":{"level":"high","effectiveFrom":"\#((now - .seconds(5 * 86_400)).rfc3339Seconds)"}}"#
                .utf8
        ).write(to: designation)
        func run(_ arguments: [String]) async throws -> (Int32, String) {
            try await AnalystCommandTests.healthcode(arguments, on: backbone)
        }

        let (status, text) = try await run(["impact", "--rules", rules.path])
        #expect(status == 0)
        #expect(text.contains("120 people evaluated in "), "\(text)")
        #expect(text.contains("30 would change, 30 turn red"))
        #expect(text.contains("  green → red: 30\n"))
        #expect(text.contains("→ reference-v1 1.1.0"))
        let (_, json) = try await run(["impact", "--rules", rules.path, "--format", "json"])
        let report = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(report?["people"] as? Int == 120 && report?["turningRed"] as? Int == 30)
        let (_, byArea) = try await run(["impact", "--designation", designation.path])
        #expect(byArea.contains("30 would change, 0 turn red"), "\(byArea)")
        #expect(byArea.contains(": rule set reference-v1 1.0.0, with the designation\n"))
        #expect(byArea.contains("  440106  green   yellow  30      "), "the travellers, by their last area")
        #expect(try await run(["impact"]).0 != 0)
        #expect(try await run(["impact", "--rules", designation.path]).0 != 0, "not a rule set")

        let (_, held) = try await run(["rules", "activate", rules.path, "--by", "ops-1", "--hold-over", "10"])
        #expect(held.hasPrefix("held #1: 30 people would turn red (over 10)"), "\(held)")
        let (_, list) = try await run(["approvals", "list"])
        #expect(list.contains("#1\trule-set\t") && list.contains("turning red 30 (over 10)\tby ops-1"))
        #expect(try await run(["approvals", "approve", "1", "--by", "ops-1"]).0 != 0, "not by the one who asked")
        let (approved, decided) = try await run(["approvals", "approve", "1", "--by", "ops-2"])
        #expect(approved == 0 && decided.contains("\tapproved\tby ops-2"))
        let (_, versions) = try await run(["rules", "list"])
        #expect(versions.contains("\t1.1.0\t") && versions.contains("by ops-1, approved by ops-2 (held change #1)"))
        #expect(try await run(["approvals", "list"]).1.isEmpty, "nothing waits")
    }

    @Test("a designation through the gateway that would turn people red is held, then published once approved")
    func heldDesignation() async throws {
        var backbone = try await TestBackbone.make(partitions: 2)
        // A rule set under which presence in a high-risk area is red, so that a designation turns people red.
        let reference = try String(
            contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent(
                "projections/rules/reference-v1.json"
            ),
            encoding: .utf8
        )
        backbone.ruleSet = try RuleSet.decode(
            Array(
                reference.replacingOccurrences(
                    of: "\"colour\": \"yellow\",\n      \"areaLevel\": \"high\"",
                    with: "\"colour\": \"red\",\n      \"areaLevel\": \"high\""
                ).utf8
            )
        )
        #expect(backbone.ruleSet.contentHash != (try RuleSet.decode(Array(reference.utf8))).contentHash)
        let holdOverTwo: (inout GatewayConfiguration) -> Void = { $0.designationHoldOver = 2 }
        try await backbone.withRunningBackbone(configureGateway: holdOverTwo) { gateway, _, probe in
            let travellers = (0..<4).map { index in
                Events.travel(
                    id: "t\(index)",
                    subject: "TRAVELLER-\(index)",
                    time: Events.hoursAgo(30),
                    from: "110101",
                    to: "440106",
                    arrivedAt: Events.hoursAgo(30)
                )
            }
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: travellers).json["accepted"] as? Int == 4)
            try await probe.waitUntilCaughtUp()
            // Nobody was in 310101: applied at once. Four were in 440106: over 2, held.
            let quiet = Events.riskArea(
                id: "quiet",
                area: "310101",
                time: Events.hoursAgo(1),
                level: "high",
                from: Events.hoursAgo(72)
            )
            let busy = Events.riskArea(
                id: "busy",
                area: "440106",
                time: Events.hoursAgo(1),
                level: "high",
                from: Events.hoursAgo(72)
            )
            let answer = try await HTTP.post(gateway + "/v1/events", ndjson: [quiet, busy])
            let results = answer.json["results"] as? [[String: Any]] ?? []
            #expect(results.map { $0["status"] as? String } == ["accepted", "held"])
            let heldID = try #require(results.last?["heldId"] as? Int)
            try await probe.waitUntilCaughtUp()
            let areaEvents = { try await count(probe.client, "SELECT count(*) FROM area_event_archive") }
            #expect(try await areaEvents() == 1, "the held designation is not in the log")
            let held = try await HeldChangeStore(client: probe.client, logger: testLogger()).changes(
                includeDecided: false
            )
            // The count stops at the first person over the threshold: bounded work on the gateway.
            #expect(held.first?.kind == .designation && held.first?.turningRed == 3)
            #expect(held.first?.requestedBy == "urn:hc:publisher:test-state-council")

            let decided = try await Backbone.decideHeldChange(
                Int64(heldID),
                approve: true,
                by: "ops-2",
                topic: backbone.topic,
                postgres: probe.client,
                logger: testLogger()
            )
            #expect(decided.status == .approved && decided.publishedAt != nil)
            try await probe.waitUntilCaughtUp()
            #expect(try await areaEvents() == 2)
            // The people present are re-evaluated in the background (the area's re-evaluation job).
            let deadline = ContinuousClock.now + .seconds(30)
            var red = 0
            while red < 4, ContinuousClock.now < deadline {
                red = try await count(probe.client, "SELECT count(*) FROM person_code WHERE status = 'red'")
                if red < 4 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(red == 4, "everyone who was in 440106 in the window")
        }
    }
}

/// A count several tasks add to.
final class Counter: Sendable {
    private let total = Mutex(0)
    func add(_ amount: Int) { total.withLock { $0 += amount } }
    var value: Int { total.withLock { $0 } }
}
