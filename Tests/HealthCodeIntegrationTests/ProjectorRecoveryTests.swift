import AsyncHTTPClient
import Foundation
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodeLocalServers
import HealthCodePostgres
import HealthCodeProjector
import HealthCodeTestSupport
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// The database or the log is not what the projector last saw: a database that went back in time (a
/// failover to a replica that missed the last commits, an older backup restored) and a log that was
/// replaced under the stored positions (topic re-created, the in-memory broker restarted). Nothing
/// accepted may be lost or applied twice.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(6)))
struct ProjectorRecoveryTests {
    /// People `range` of a workload, ten events each.
    static func events(of workload: ProjectorWorkload, people range: Range<Int>) -> [CloudEvent] {
        let subjects = workload.subjects
        return range.flatMap { workload.events(ofPerson: $0, subject: subjects[$0]) }
    }

    /// Every accepted event archived once, and every state and code what the policy says over the archive.
    static func expectEverythingApplied(_ backbone: TestBackbone, events: Int) async throws {
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.archivedPersonEvents == events, "every accepted event is archived")
        #expect(
            verdict.stateMismatches.isEmpty,
            "states differing from the archive: \(verdict.stateMismatches.prefix(3))"
        )
        #expect(verdict.codeMismatches.isEmpty, "codes differing from the policy: \(verdict.codeMismatches.prefix(3))")
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
        #expect(
            verdict.decisionChainBreaks.isEmpty,
            "decision logs out of chain: \(verdict.decisionChainBreaks.prefix(3))"
        )
    }

    @Test("events produced to Kafka twice, at later offsets (past the gateway's duplicate window), apply once")
    func resentEventsApplyOnce() async throws {
        let backbone = try await TestBackbone.make(partitions: 2)
        let workload = ProjectorWorkload(people: 50, eventsPerPerson: 10, anchor: Instant.now())
        let events = Self.events(of: workload, people: 0..<50)
        let resent = Array(events.prefix(200))
        try await backbone.withRunningBackbone { _, _, probe in
            try await publish(events, to: backbone)
            try await probe.waitUntilCaughtUp()
            try await publish(resent, to: backbone)
            try await probe.waitUntilCaughtUp()
        }
        #expect(try await totalApplied(backbone) == events.count + resent.count, "every message was read")
        let folded = try await backbone.withDatabase {
            try await count($0, "SELECT coalesce(sum(event_count), 0)::int8 FROM person_state")
        }
        #expect(folded == events.count, "each event folded into its person's state once")
        try await Self.expectEverythingApplied(backbone, events: events.count)
    }

    @Test(
        "a projector transaction that waited on a person's lock logs the change against the code its holder committed"
    )
    func decisionLogAfterALockWait() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let logger = testLogger()
        try await backbone.withRunningBackbone { gateway, _, probe in
            let negative = Events.testResult(
                id: "neg",
                subject: "RAW-WAITER",
                time: Events.hoursAgo(3),
                result: "negative"
            )
            let other = Events.testResult(id: "pos", subject: "RAW-OTHER", time: Events.hoursAgo(3), result: "positive")
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [negative, other]).status == 202)
            try await probe.waitUntilCaughtUp()
            let waiter = backbone.pseudonymizer.pseudonym(of: "RAW-WAITER")
            let red = backbone.pseudonymizer.pseudonym(of: "RAW-OTHER")
            try await backbone.withDatabase { client in
                try await client.withConnection { holder in
                    // What a designation job or the re-evaluator does: hold the person, change the code, log it.
                    try await holder.query("BEGIN", logger: logger)
                    try await holder.query(
                        "SELECT 1 FROM person_state WHERE subject = \(waiter) FOR UPDATE",
                        logger: logger
                    )
                    try await holder.query(
                        """
                        UPDATE person_code SET (status, valid_until, decision, rule_set, evaluated_at) =
                            (SELECT status, valid_until, decision, rule_set, evaluated_at FROM person_code
                             WHERE subject = \(red))
                        WHERE subject = \(waiter)
                        """,
                        logger: logger
                    )
                    try await holder.query(
                        """
                        INSERT INTO decision_log (subject, decided_at, old_status, new_status, valid_until, rule_set, decision)
                        SELECT \(waiter), now(), 'green', status, valid_until, rule_set, decision
                        FROM person_code WHERE subject = \(red)
                        """,
                        logger: logger
                    )
                    // The projector's batch for the person waits on the lock meanwhile.
                    let positive = Events.testResult(
                        id: "pos-w",
                        subject: "RAW-WAITER",
                        time: Events.hoursAgo(1),
                        result: "positive"
                    )
                    #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
                    try await Task.sleep(for: .seconds(2))
                    try await holder.query("COMMIT", logger: logger)
                }
            }
            try await probe.waitUntilCaughtUp()
            let statuses = try await backbone.withDatabase { client in
                var rows: [String] = []
                for try await (old, new) in try await client.query(
                    "SELECT old_status, new_status FROM decision_log WHERE subject = \(waiter) ORDER BY decision_id",
                    logger: logger
                ).decode((String?, String).self) {
                    rows.append("\(old ?? "none")→\(new)")
                }
                return rows
            }
            // Red was committed by the lock holder; the projector's red is no change of status.
            #expect(statuses == ["none→green", "green→red"])
        }
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.decisionChainBreaks.isEmpty)
    }

    @Test("a database that went back (the last archived events and positions of every partition) loses nothing")
    func positionsMovedBack() async throws {
        let backbone = try await TestBackbone.make(partitions: 4)
        let workload = ProjectorWorkload(people: 2_400, eventsPerPerson: 10, anchor: Instant.now())
        let first = Self.events(of: workload, people: 0..<2_000)
        let second = Self.events(of: workload, people: 2_000..<2_400)
        let archived = { try await backbone.withDatabase { try await count($0, "SELECT count(*) FROM event_archive") } }
        try await backbone.withRunningBackbone { _, _, probe in
            try await publish(first, to: backbone)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
            let before = try await archived()
            // What a failover to a replica 100 commits per partition behind looks like.
            try await backbone.withDatabase { client in
                try await client.withTransaction(logger: testLogger()) { connection in
                    try await connection.query(
                        """
                        DELETE FROM event_archive e USING consumer_offsets o
                        WHERE o.topic = e.kafka_topic AND o.partition = e.kafka_partition
                          AND e.kafka_offset >= o.next_offset - 100
                        """,
                        logger: testLogger()
                    )
                    try await connection.query(
                        "UPDATE consumer_offsets SET next_offset = next_offset - 100",
                        logger: testLogger()
                    )
                }
            }
            let after = try await archived()
            #expect(
                after <= before - 300,
                "the last 100 archived events of each of 4 partitions are gone: \(before) → \(after)"
            )
            try await publish(second, to: backbone)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
        }
        // The deleted events are archived again; states and codes, never rolled back here, still agree.
        try await Self.expectEverythingApplied(backbone, events: first.count + second.count)
    }

    @Test("an older backup restored under a running projector (every projection table rolled back) loses nothing")
    func olderBackupRestored() async throws {
        let backbone = try await TestBackbone.make(partitions: 4)
        let workload = ProjectorWorkload(people: 2_400, eventsPerPerson: 10, anchor: Instant.now())
        let waves = [0..<1_600, 1_600..<2_000, 2_000..<2_400].map { Self.events(of: workload, people: $0) }
        let tables = [
            "event_archive", "area_event_archive", "person_state", "person_code", "decision_log", "consumer_offsets",
            "dead_letters", "person_presence", "area_reevaluations",
        ]
        try await backbone.withRunningBackbone { _, _, probe in
            try await publish(waves[0], to: backbone)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
            try await backbone.withDatabase { client in
                for table in tables {
                    try await client.query(
                        PostgresQuery(unsafeSQL: "CREATE TABLE backup_\(table) AS SELECT * FROM \(table)"),
                        logger: testLogger()
                    )
                }
            }
            try await publish(waves[1], to: backbone)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
            // The restore: every projection table as it was at the backup, in one transaction.
            try await backbone.withDatabase { client in
                try await client.withTransaction(logger: testLogger()) { connection in
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "TRUNCATE \(tables.joined(separator: ", "))"),
                        logger: testLogger()
                    )
                    for table in tables {
                        try await connection.query(
                            PostgresQuery(
                                unsafeSQL: "INSERT INTO \(table) OVERRIDING SYSTEM VALUE SELECT * FROM backup_\(table)"
                            ),
                            logger: testLogger()
                        )
                    }
                    // The census as a backup of one snapshot would hold it (the copies above are one by one).
                    try await connection.query("SELECT hc_recount_code_census()", logger: testLogger())
                }
            }
            #expect(
                try await backbone.withDatabase { try await count($0, "SELECT count(*) FROM event_archive") }
                    == waves[0].count
            )
            try await publish(waves[2], to: backbone)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
        }
        try await Self.expectEverythingApplied(backbone, events: waves.map(\.count).reduce(0, +))
    }

    @Test("a log replaced under the stored positions (the broker restarted empty) is read again from its start")
    func replacedLogIsReadAgain() async throws {
        try await ScratchServers.with(root: LocalInfrastructure.repositoryRoot) { try await replacedLog(on: $0) }
    }

    private func replacedLog(on servers: ScratchServers) async throws {
        let backbone = try await TestBackbone.make(
            partitions: 4,
            postgresPort: servers.postgresPort,
            kafkaBootstrapServers: servers.kafkaBootstrapServers
        )
        let workload = ProjectorWorkload(people: 600, eventsPerPerson: 10, anchor: Instant.now())
        let before = Self.events(of: workload, people: 0..<500)
        try await backbone.withRunningBackbone { _, _, probe in
            try await publish(before, to: backbone)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
        }
        // The broker keeps its topics in memory: after a restart the topic is new and short, while
        // PostgreSQL still holds positions far beyond its end.
        try await servers.run("restart-kafka")
        try await backbone.withDatabase { client in
            let migrations = try SchemaMigrator.migrations(
                in: LocalInfrastructure.repositoryRoot.appendingPathComponent("projections/migrations")
            )
            try await Backbone.prepare(
                topic: backbone.topic,
                postgres: client,
                migrations: migrations,
                logger: testLogger()
            )
        }
        let after = Self.events(of: workload, people: 500..<600)
        try await backbone.withRunningBackbone { gateway, api, probe in
            try await publish(after, to: backbone)
            let positive = Events.testResult(
                id: "lab-after-restart",
                subject: "RAW-AFTER-RESTART",
                time: Events.hoursAgo(1),
                result: "positive"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
            try await probe.waitUntilCaughtUp(timeout: .seconds(120))
            let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-AFTER-RESTART")
            var request = HTTPClientRequest(url: api + "/v1/people/\(pseudonym)/code")
            request.headers.add(name: "Authorization", value: "Bearer \(TestBackbone.checkpointKey)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(
                body.contains(#""status":"red""#),
                "the positive person published after the restart is red: \(body)"
            )
        }
        try await Self.expectEverythingApplied(backbone, events: before.count + after.count + 1)
    }
}
