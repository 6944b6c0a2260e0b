import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import HealthCodeProjector
import HealthCodeTestSupport
import PostgresNIO
import Synchronization
import Testing

/// Every recorded decision can be replayed: asked "what was this person's code at the instant it was decided,
/// as known then", the API answers the decision the projector logged, with the same rule set, also across an
/// activation of another rule set (issue 19, item 2).
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .timeLimit(.minutes(3)))
struct DecisionReplayTests {
    @Test("each decision-log entry of random histories spanning two rule sets is reproduced exactly by a replay")
    func decisionsReplay() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let logger = testLogger()
        let t0 = Instant(rfc3339: "2020-03-01T00:00:00Z")!
        let switchover = t0 + .seconds(14 * 86_400)
        let longer = try ReferenceRules.longer()
        try await backbone.withDatabase { client in
            let versions = RuleSetVersionStore(client: client, logger: logger)
            _ = try await versions.activate(
                body: try ReferenceRules.file(),
                effectiveFrom: Instant(microsecondsSinceEpoch: 0),
                activatedBy: "ops-1"
            )
            _ = try await versions.activate(body: longer, effectiveFrom: switchover, activatedBy: "ops-2")
        }

        // Random histories: 40 people, 14 events each over 40 days, each recorded up to two hours after it
        // happened, at distinct instants.
        var random = SplitMix64(seed: 19)
        var events: [CloudEvent] = []
        for person in 0..<40 {
            let subject = String(format: "%032x", person + 1)
            var time = t0
            for number in 0..<14 {
                time = time + .seconds(Int64(random.next() % (3 * 86_400)))
                let payload: EventPayload
                switch random.next() % 6 {
                case 0: payload = .exposure(Exposure(kind: .closeContact))
                case 1: payload = .exposure(Exposure(kind: .secondaryContact))
                case 2:
                    payload = .testResult(
                        TestResult(test: .pcr, result: random.next() % 3 == 0 ? .positive : .negative, lab: "l")
                    )
                case 3:
                    payload = .testResult(
                        TestResult(test: .antigen, result: random.next() % 2 == 0 ? .positive : .negative, lab: "l")
                    )
                case 4:
                    payload = .travel(
                        Travel(
                            mode: .train,
                            from: AreaCode("110101")!,
                            to: AreaCode("310104")!,
                            arrivedAt: time + .seconds(3600)
                        )
                    )
                default:
                    payload = .declaration(Declaration(symptoms: [.fever], temperatureCelsius: 38.2, location: nil))
                }
                var event = CloudEvent(
                    id: "e-\(person)-\(number)",
                    source: "urn:hc:publisher:test-\(number % 3)",
                    subject: subject,
                    time: time,
                    payload: payload
                )
                event.recordedTime =
                    time + .seconds(Int64(random.next() % 7200)) + .microseconds(Int64(person * 100 + number))
                events.append(event)
            }
        }
        events.sort { $0.recordedTime! < $1.recordedTime! }

        // Projected in batches of 20 in the order they were recorded, each evaluated at its last recording:
        // what it decided was known then, and nothing recorded later was.
        let clock = Mutex(t0)
        try await Backbone.withPostgres(backbone.clientConfiguration, logger: logger) { client in
            let store = ProjectionStore(client: client, logger: logger)
            let projection = Projection(
                store: store,
                catalog: RiskAreaCatalog(archive: store, logger: logger),
                rules: RuleSetCatalog(source: store, configured: Policy(ruleSet: backbone.ruleSet), logger: logger),
                group: backbone.group,
                now: { clock.withLock { $0 } },
                logger: logger
            )
            var position =
                try await store.positions(group: backbone.group, topic: backbone.topic.topic, partitions: [0])[0] ?? 0
            for start in stride(from: 0, to: events.count, by: 20) {
                let batch = events[start..<min(start + 20, events.count)]
                clock.withLock { $0 = batch.last!.recordedTime! }
                let messages = batch.enumerated().map { index, event in
                    ConsumedMessage(
                        offset: position + Int64(index),
                        key: Array(event.subject.utf8),
                        value: event.jsonBytes()
                    )
                }
                let outcome = try await projection.apply(
                    PartitionBatch(topic: backbone.topic.topic, partition: 0, messages: messages),
                    from: position
                )
                guard case .applied(let next, _, _, _, _) = outcome else { throw TestFailure("batch not applied") }
                position = next
            }
        }

        try await Backbone.withPostgres(backbone.clientConfiguration(for: .api), logger: logger) { client in
            let queries = Backbone.explanations(postgres: client, ruleSet: backbone.ruleSet, logger: logger).queries
            let reference = try Array(
                Data(
                    contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent(
                        "projections/rules/reference-v1.json"
                    )
                )
            )
            let rows = try await client.query(
                """
                SELECT d.subject, hc_micros(d.decided_at), d.decision::text, r.id, r.version, r.hash
                FROM decision_log d JOIN rule_set r ON r.ref = d.rule_set ORDER BY d.decision_id
                """,
                logger: logger
            )
            var replayed = 0
            var byRuleSet: [String: Int] = [:]
            for try await (subject, decidedAt, json, id, version, hash) in rows.decode(
                (String, Int64, String, String, String, String).self
            ) {
                let logged = try CodeDecision(
                    storedJSON: Array(json.utf8),
                    ruleSet: RuleSetIdentity(id: id, version: version, hash: hash)
                )
                let instant = Instant(microsecondsSinceEpoch: decidedAt)
                let replay = try await queries.code(of: subject, at: instant, knownAt: instant, now: Instant.now())
                #expect(replay.status == logged.status, "\(subject) at \(instant)")
                #expect(replay.validUntil == logged.validUntil, "\(subject) at \(instant)")
                #expect(replay.reasons == logged.reasons, "\(subject) at \(instant)")
                #expect(replay.ruleSet.hash == logged.ruleSetHash, "\(subject) at \(instant)")
                // The evidence bundle reproduces it too, and so does its offline check.
                let evidence = try await Backbone.evidence(
                    postgres: client,
                    configuredFile: reference,
                    subject: subject,
                    at: instant,
                    knownAt: instant,
                    rules: .inForce,
                    context: [],
                    logger: logger
                )
                #expect(evidence.decision == logged, "\(subject) at \(instant)")
                let verified = EvidenceVerification.verify(evidence.jsonBytes())
                #expect(verified.isVerified && verified.remade?.decision == logged, "\(verified.problems)")
                byRuleSet[version, default: 0] += 1
                replayed += 1
            }
            #expect(replayed > 100)
            #expect(byRuleSet["1.0.0", default: 0] > 20 && byRuleSet["1.1.0", default: 0] > 20, "\(byRuleSet)")
        }
    }
}
