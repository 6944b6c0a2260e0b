import Foundation
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodePostgres
import HealthCodeTestSupport
import Logging
import PostgresNIO
import Testing

@testable import HealthCodeAPI
@testable import HealthCodeCore

/// Schema 14 (lean storage) converts a database of schema 13 in place: codes, decisions, states and archived
/// events written the old way answer byte for byte as before, read by the API's and the projector's own roles.
@Suite("Lean storage migration", .timeLimit(.minutes(2)))
struct LeanStorageMigrationTests {
    static let anchor = Instant(rfc3339: "2026-12-01T08:00:00Z")!
    /// A rule set that decided earlier rows of the decision log.
    static let earlierRuleSet = RuleSetIdentity(id: "reference-v1", version: "0.9.0", hash: "sha256:0a0b")

    /// What an earlier release stored for a decision: its JSON with the rule set repeated inside.
    static func earlierStoredJSON(_ decision: CodeDecision, ruleSet: RuleSetIdentity) -> String {
        let compact = String(decoding: decision.storedJSON(), as: UTF8.self)
        return String(compact.dropLast())
            + ",\"ruleSetID\":\"\(ruleSet.id)\",\"ruleSetVersion\":\"\(ruleSet.version)\","
            + "\"ruleSetHash\":\"\(ruleSet.hash)\"}"
    }

    /// What an earlier release stored for a state: every record an object with its stamp, instants as text.
    static func earlierStoredJSON(_ state: PersonState) -> String {
        func stamp(_ stamp: EventStamp) -> String {
            "\"stamp\":{\"source\":\"\(stamp.source)\",\"id\":\"\(stamp.id)\",\"time\":\"\(stamp.time.rfc3339)\","
                + "\"recorded\":\"\(stamp.recorded.rfc3339)\"}"
        }
        func list<Record>(_ name: String, _ records: [Record], _ body: (Record) -> String) -> String {
            "\"\(name)\":[" + records.map { "{" + body($0) + "}" }.joined(separator: ",") + "]"
        }
        let members = [
            list("tests", state.tests) {
                stamp($0.stamp) + ",\"test\":\"\($0.test.rawValue)\",\"result\":\"\($0.result.rawValue)\""
            },
            list("travels", state.travels) {
                stamp($0.stamp)
                    + ",\"from\":\"\($0.from)\",\"to\":\"\($0.to)\",\"arrivedAt\":\"\($0.arrivedAt.rfc3339)\""
            },
            list("declarations", state.declarations) {
                stamp($0.stamp) + ",\"symptoms\":[" + $0.symptoms.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
                    + "]"
                    + ($0.temperatureCelsius.map { ",\"temperatureCelsius\":\($0)" } ?? "")
                    + ($0.location.map { ",\"location\":\"\($0)\"" } ?? "")
            },
            list("exposures", state.exposures) { stamp($0.stamp) + ",\"kind\":\"\($0.kind.rawValue)\"" },
            list("reviews", state.reviews) {
                stamp($0.stamp) + ",\"status\":\"\($0.status.rawValue)\",\"validUntil\":\"\($0.validUntil.rfc3339)\""
            },
            list("retractions", state.retractions) { stamp($0.stamp) + ",\"retracts\":\"\($0.retracts)\"" },
        ]
        return "{" + members.joined(separator: ",") + "}"
    }

    @Test("codes, decisions, states and archived events written under schema 13 answer identically after 0014")
    func storedRowsConvertInPlace() async throws {
        let logger = testLogger()
        let database = LocalInfrastructure.uniqueName("hc_test")
        let port = LocalInfrastructure.postgresPort
        try await Backbone.withPostgres(
            TestBackbone.clientConfiguration(port: port, database: "healthcode", serviceLimits: false),
            logger: logger
        ) {
            try await $0.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"), logger: logger)
        }
        let migrations = try SchemaMigrator.migrations(
            in: LocalInfrastructure.repositoryRoot.appendingPathComponent("projections/migrations")
        )
        let ruleSet = try RuleSet.decode(
            [UInt8](
                try Data(
                    contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent(
                        "projections/rules/reference-v1.json"
                    )
                )
            )
        )
        let policy = Policy(ruleSet: ruleSet)
        let workload = ProjectorWorkload(people: 40, eventsPerPerson: 10, anchor: Self.anchor)
        var states: [String: PersonState] = [:]
        var codes: [String: CodeDecision] = [:]
        var archived: [String: [CloudEvent]] = [:]
        for (index, subject) in workload.subjects.enumerated() {
            var state = PersonState()
            for (number, event) in workload.events(ofPerson: index, subject: subject).enumerated() {
                // Some events without `recordedtime` (published straight to Kafka): archived as they were.
                var event = event
                if number % 3 == 0 { event.recordedTime = nil }
                archived[subject, default: []].append(event)
                state.apply(event)
            }
            states[subject] = state
            codes[subject] = policy.evaluate(state, areas: RiskAreaMap(), at: Self.anchor)
        }
        #expect(Set(codes.values.map(\.status)).count > 1)

        let admin = TestBackbone.clientConfiguration(port: port, database: database, serviceLimits: false)
        try await Backbone.withPostgres(admin, logger: logger) { client in
            let migrator = SchemaMigrator(client: client, logger: logger)
            try await migrator.migrate(migrations.filter { $0.version < "0014" })
            var offset: Int64 = 0
            for subject in workload.subjects {
                for event in archived[subject]! {
                    offset += 1
                    try await client.query(
                        """
                        INSERT INTO event_archive (subject, source, event_id, type, time, recorded_time, body,
                                                   kafka_topic, kafka_partition, kafka_offset)
                        VALUES (\(subject), \(event.source), \(event.id), \(event.type.rawValue),
                                hc_instant(\(event.time.microsecondsSinceEpoch)),
                                hc_instant(\(event.effectiveRecordedTime.microsecondsSinceEpoch)),
                                \(String(decoding: event.jsonBytes(), as: UTF8.self))::jsonb, 'hc.events', 0, \(offset))
                        """,
                        logger: logger
                    )
                }
                let state = Self.earlierStoredJSON(states[subject]!)
                #expect(try PersonState(storedJSON: Array(state.utf8)) == states[subject])
                let code = codes[subject]!
                let decision = Self.earlierStoredJSON(code, ruleSet: ruleSet.identity)
                let earlier = Self.earlierStoredJSON(code, ruleSet: Self.earlierRuleSet)
                let validUntil = code.validUntil?.microsecondsSinceEpoch ?? Int64.min
                try await client.query(
                    """
                    INSERT INTO person_state (subject, state, event_count)
                    VALUES (\(subject), \(state)::json, \(Int32(states[subject]!.eventCount)))
                    """,
                    logger: logger
                )
                try await client.query(
                    """
                    INSERT INTO person_code (subject, status, valid_until, decision, rule_set_hash, evaluated_at)
                    VALUES (\(subject), \(code.status.rawValue), hc_instant(\(validUntil)), \(decision)::json,
                            \(ruleSet.contentHash), hc_instant(\(Self.anchor.microsecondsSinceEpoch)))
                    """,
                    logger: logger
                )
                try await client.query(
                    """
                    INSERT INTO decision_log (subject, decided_at, old_status, new_status, valid_until, rule_set_hash,
                                              decision)
                    VALUES (\(subject), now(), NULL, \(code.status.rawValue), hc_instant(\(validUntil)),
                            \(Self.earlierRuleSet.hash), \(earlier)::json),
                           (\(subject), now(), \(code.status.rawValue), \(code.status.rawValue),
                            hc_instant(\(validUntil)), \(ruleSet.contentHash), \(decision)::json)
                    """,
                    logger: logger
                )
            }
            #expect(try await migrator.migrate(migrations.filter { $0.version < "0015" }) == ["0014_lean_storage"])
            try await migrator.migrate(migrations)
        }

        // The API's reads, as its own role: the same decisions, the same answers byte for byte.
        try await Backbone.withPostgres(
            TestBackbone.clientConfiguration(port: port, database: database, role: .api),
            logger: logger
        ) { client in
            let stored = try await CodeStore(client: client, logger: logger).codes(of: workload.subjects)
            #expect(stored.count == workload.subjects.count)
            for subject in workload.subjects {
                let expected = codes[subject]!
                let decision = try stored[subject]?.decision()
                #expect(decision == expected)
                #expect(stored[subject]?.evaluatedAt == Self.anchor)
                let now = Instant(microsecondsSinceEpoch: Self.anchor.microsecondsSinceEpoch + 1_000_000)
                let answer = decision.map {
                    PersonCode(subject: subject, decision: $0, evaluatedAt: now, knownAt: now).jsonBytes()
                }
                #expect(
                    answer
                        == PersonCode(subject: subject, decision: expected, evaluatedAt: now, knownAt: now).jsonBytes()
                )
                #expect(try await CodeStore(client: client, logger: logger).state(of: subject) == states[subject])
                // The archive's events put back together from the columns and the rest of the body.
                let events = try await PersonRecordStore(client: client, logger: logger).events(
                    of: subject,
                    relevantFrom: nil
                )
                #expect(
                    events.map(\.event)
                        == archived[subject]!.sorted { ($0.time, $0.id, $0.source) < ($1.time, $1.id, $1.source) }
                )
            }
        }

        // The projector's reads, as its own role; and the rows no longer repeat the rule set.
        try await Backbone.withPostgres(
            TestBackbone.clientConfiguration(port: port, database: database, role: .projector),
            logger: logger
        ) { client in
            let people = try await ProjectionStore(client: client, logger: logger).withTransaction {
                try await $0.loadPeople(workload.subjects)
            }
            for subject in workload.subjects {
                #expect(people[subject]?.code == codes[subject])
                #expect(people[subject]?.state == states[subject])
            }
            let rows = try await client.query(
                """
                SELECT r.id, r.version, r.hash, count(*)::int8 FROM decision_log d JOIN rule_set r ON r.ref = d.rule_set
                WHERE d.decision::text NOT LIKE '%ruleSet%'
                GROUP BY r.id, r.version, r.hash ORDER BY r.version
                """,
                logger: logger
            )
            var logged: [RuleSetIdentity: Int64] = [:]
            for try await (id, version, hash, count) in rows.decode((String, String, String, Int64).self) {
                logged[RuleSetIdentity(id: id, version: version, hash: hash)] = count
            }
            #expect(logged == [Self.earlierRuleSet: 40, ruleSet.identity: 40])
            let compact = try await client.query(
                "SELECT count(*)::int8 FROM person_state WHERE (state::jsonb ->> 'v') = '2'",
                logger: logger
            )
            for try await count in compact.decode(Int64.self) { #expect(count == 40) }
            // Journeys got their arrival column from their bodies; nothing else did.
            let arrivals = try await client.query(
                """
                SELECT count(*) FILTER (WHERE type = 'hc.travel.v1')::int8,
                       count(*) FILTER (WHERE arrived_at IS DISTINCT FROM
                           CASE WHEN type = 'hc.travel.v1' THEN (body #>> '{data,arrivedAt}')::timestamptz END)::int8
                FROM event_archive
                """,
                logger: logger
            )
            for try await (travels, wrong) in arrivals.decode((Int64, Int64).self) {
                #expect(travels > 0)
                #expect(wrong == 0)
            }
        }
    }
}
