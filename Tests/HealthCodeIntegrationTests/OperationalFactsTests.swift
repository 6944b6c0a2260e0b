import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import Logging
import PostgresNIO
import Testing

/// The operational facts the projector keeps for the operators' dashboard (migration 0018): the code census and
/// its samples, publisher feeds and projector reports, read through `OperationsStore` as the query API's role.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(6)))
struct OperationalFactsTests {
    /// The dashboard's reader, logged in as the query API.
    static func operations<Result: Sendable>(
        _ backbone: TestBackbone,
        _ body: (OperationsStore) async throws -> Result
    ) async throws -> Result {
        try await Backbone.withPostgres(backbone.clientConfiguration(for: .api), logger: testLogger()) { client in
            try await body(OperationsStore(client: client, logger: testLogger()))
        }
    }

    @Test("after a workload with designations and retractions the census, feeds and reports equal what is stored")
    func factsFollowTheProjection() async throws {
        let backbone = try await TestBackbone.make(partitions: 4)
        let started = Instant.now()
        let events = RebuildTests.history(people: 800, anchor: started)
        try await backbone.withRunningBackbone { _, _, _ in
            try await publish(events, to: backbone)
            try await waitUntilSettled(backbone, applied: events.count)

            // A running projector reports itself within its interval (5 s), with its partitions.
            let deadline = ContinuousClock.now + .seconds(15)
            var report: ProjectorReport?
            while report?.assignedPartitions != 4, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
                report = try await Self.operations(backbone) { try await $0.projectorReports() }
                    .first { $0.member.hasPrefix(backbone.group + "@") }
            }
            let reported = try #require(report, "the running projector's report")
            #expect(reported.assignedPartitions == 4)
            #expect(Instant.now() - reported.reportedAt < .seconds(15))
            #expect(reported.healthy)
            #expect(["idle", "progressing"].contains(reported.state))
        }

        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.people == 800)
        #expect(verdict.codeMismatches.isEmpty, "\(verdict.codeMismatches.prefix(5))")
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
        let census = try await Self.operations(backbone) { try await $0.codeCensus() }
        #expect(census.reduce(0) { $0 + $1.total } == 800)
        #expect(census.count > 2, "people in several areas: \(census.map(\.area))")

        // Each publisher's feed: every event archived of its source, the latest archived when its feed says.
        let feeds = try await Self.operations(backbone) { try await $0.publisherFeeds(since: started - .seconds(60)) }
        let archived = try await backbone.withDatabase { client in
            var archived: [String: (events: Int, last: Instant)] = [:]
            for try await (source, events, last) in try await client.query(
                """
                SELECT source, count(*)::int8, hc_micros(max(archived_at)) FROM (
                    SELECT source, archived_at FROM event_archive
                    UNION ALL SELECT source, archived_at FROM area_event_archive
                ) AS a GROUP BY source
                """,
                logger: testLogger()
            ).decode((String, Int64, Int64).self) {
                archived[source] = (Int(events), Instant(microsecondsSinceEpoch: last))
            }
            return archived
        }
        #expect(Set(feeds.map(\.publisher)) == Set(archived.keys))
        for feed in feeds {
            #expect(feed.minutes.reduce(0) { $0 + $1.events } == archived[feed.publisher]?.events, "\(feed.publisher)")
            #expect(feed.lastEventAt == archived[feed.publisher]?.last, "\(feed.publisher)")
            #expect(feed.minutes.map(\.minute) == feed.minutes.map(\.minute).sorted())
        }
        #expect(archived.values.reduce(0) { $0 + $1.events } == events.count)
        // Minutes before `since` are left out; the publishers stay, with their freshness.
        let later = try await Self.operations(backbone) {
            try await $0.publisherFeeds(since: Instant.now() + .seconds(120))
        }
        #expect(later.map(\.publisher) == feeds.map(\.publisher))
        #expect(later.allSatisfy { $0.minutes.isEmpty })
        #expect(later.map(\.lastEventAt) == feeds.map(\.lastEventAt))
    }

    @Test("the census is sampled once a minute (and per area once an hour); old facts are pruned when it is")
    func samplesAndRetention() async throws {
        let backbone = try await TestBackbone.make(partitions: 2)
        let events = RebuildTests.history(people: 200)
        try await publish(events, to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count },
            gracefully: true
        )
        try await backbone.withDatabase { client in
            let logger = testLogger()
            // What the projector's reporter sampled meanwhile goes; facts older than they are kept are added.
            for statement in [
                "DELETE FROM code_census_sample", "DELETE FROM code_census_area_sample",
                """
                INSERT INTO code_census_sample VALUES (date_trunc('minute', now()) - interval '31 days', 1, 2, 3),
                    (date_trunc('minute', now()) - interval '29 days', 4, 5, 6)
                """,
                "INSERT INTO code_census_area_sample VALUES (now() - interval '31 days', 110101, 1, 2, 3)",
                """
                INSERT INTO publisher_ingest VALUES
                    (date_trunc('minute', now()) - interval '8 days', 'urn:hc:publisher:gone', 0, 5, now() - interval '8 days')
                """,
                "INSERT INTO publisher_feed VALUES ('urn:hc:publisher:gone', 0, 5, now() - interval '8 days')",
                "INSERT INTO projector_report VALUES ('old@host:1', now() - interval '2 days', 'idle', 0, null, 0, true)",
            ] {
                try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let store = ProjectionStore(client: client, logger: logger)
            let first = try await store.sampleOperationalFacts()
            let second = try await store.sampleOperationalFacts()
            #expect(first)
            let reader = OperationsStore(client: client, logger: logger)
            let history = try await reader.codeCensusHistory(since: Instant.now() - .seconds(40 * 86_400))
            // The 29-day-old sample stays, the 31-day-old one is gone; one new sample a minute, whoever asks.
            #expect(history.first.map { [$0.green, $0.yellow, $0.red] } == [4, 5, 6])
            #expect(history.count == (second ? 3 : 2), "a second sample only if the minute turned meanwhile")
            let census = try await reader.codeCensus()
            let latest = try #require(history.last)
            #expect(latest.green == census.reduce(0) { $0 + $1.green })
            #expect(latest.yellow == census.reduce(0) { $0 + $1.yellow })
            #expect(latest.red == census.reduce(0) { $0 + $1.red })
            #expect(latest.green + latest.yellow + latest.red == 200)
            let areas = try await reader.areaCensusHistory(since: Instant.now() - .seconds(40 * 86_400))
            #expect(areas.count == 1)
            #expect(areas.first?.areas == census)
            #expect(areas.first?.at == latest.at)
            // Publisher minutes after 7 days and reports after a day are gone; a publisher's freshness stays.
            let feeds = try await reader.publisherFeeds(since: Instant.now() - .seconds(30 * 86_400))
            let gone = try #require(feeds.first { $0.publisher == "urn:hc:publisher:gone" })
            #expect(gone.minutes.isEmpty)
            #expect(Instant.now() - gone.lastEventAt > .seconds(7 * 86_400))
            #expect(try await count(client, "SELECT count(*) FROM projector_report WHERE member = 'old@host:1'") == 0)
        }
    }

    @Test("codes deleted or truncated by hand leave the census; a recount restores it")
    func codesRemovedByHand() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let events = RebuildTests.history(people: 100)
        try await publish(events, to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count },
            gracefully: true
        )
        try await backbone.withDatabase { client in
            let logger = testLogger()
            let reader = OperationsStore(client: client, logger: logger)
            try await client.query(
                "DELETE FROM person_code WHERE subject IN (SELECT subject FROM person_code ORDER BY subject LIMIT 30)",
                logger: logger
            )
            #expect(try await reader.codeCensus().reduce(0) { $0 + $1.total } == 70)
            // A change by hand is not counted; the recount (what a rollback to `*_previous` runs) counts it.
            try await client.query("UPDATE person_code SET status = 'red'", logger: logger)
            try await client.query("SELECT hc_recount_code_census()", logger: logger)
            let recounted = try await reader.codeCensus()
            #expect(recounted.reduce(0) { $0 + $1.red } == 70)
            #expect(recounted.reduce(0) { $0 + $1.total } == 70)
            try await client.query("TRUNCATE person_code", logger: logger)
            #expect(try await reader.codeCensus().isEmpty)
        }
    }

    /// Waits until `applied` events are applied and the designations' re-evaluations are done.
    func waitUntilSettled(_ backbone: TestBackbone, applied: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            let done = try await totalApplied(backbone)
            let jobs = try await backbone.withDatabase {
                try await count($0, "SELECT count(*) FROM area_reevaluations")
            }
            if done >= applied && jobs == 0 { return }
            guard ContinuousClock.now < deadline else { throw TestFailure("the projector did not settle") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
