import HealthCodeCore
import Logging
import PostgresNIO

/// The operational facts (migration 0018) as the operators' dashboard reads them: the code census and its
/// history, publisher feeds and projector reports. Every read is of a few small rows that the projector keeps
/// up to date as it goes; none scans the people.
public struct OperationsStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The current codes per area and colour, one census per area that has any (the unknown area included, as
    /// `nil`, first), areas ascending. Exact as of the last committed projector transaction.
    public func codeCensus() async throws -> [CodeCensus] {
        let rows = try await client.query(
            "SELECT area_code, status, sum(codes)::int8 FROM code_census GROUP BY area_code, status",
            logger: logger
        )
        var counts: [(area: AreaCode?, status: CodeStatus, codes: Int)] = []
        for try await (area, status, codes) in rows.decode((Int32?, String, Int64).self) {
            counts.append((try Self.area(area), try Self.status(status), Int(codes)))
        }
        return CodeCensus.fold(counts)
    }

    /// The census's totals sampled once a minute from `since` on, ascending (kept 30 days).
    public func codeCensusHistory(since: Instant) async throws -> [CodeCensusSample] {
        let rows = try await client.query(
            """
            SELECT hc_micros(sampled_at), green, yellow, red FROM code_census_sample
            WHERE sampled_at >= hc_instant(\(since.microsecondsSinceEpoch)) ORDER BY sampled_at
            """,
            logger: logger
        )
        var samples: [CodeCensusSample] = []
        for try await (at, green, yellow, red) in rows.decode((Int64, Int64, Int64, Int64).self) {
            samples.append(
                CodeCensusSample(
                    at: Instant(microsecondsSinceEpoch: at),
                    green: Int(green),
                    yellow: Int(yellow),
                    red: Int(red)
                )
            )
        }
        return samples
    }

    /// The census per area sampled once an hour from `since` on, ascending (kept 30 days).
    public func areaCensusHistory(since: Instant) async throws -> [AreaCensusSample] {
        let rows = try await client.query(
            """
            SELECT hc_micros(sampled_at), area_code, green, yellow, red FROM code_census_area_sample
            WHERE sampled_at >= hc_instant(\(since.microsecondsSinceEpoch)) ORDER BY sampled_at
            """,
            logger: logger
        )
        var samples: [AreaCensusSample] = []
        var counts: [(area: AreaCode?, status: CodeStatus, codes: Int)] = []
        var current: Int64?
        func close() {
            if let current {
                samples.append(
                    AreaCensusSample(at: Instant(microsecondsSinceEpoch: current), areas: CodeCensus.fold(counts))
                )
            }
            counts = []
        }
        for try await (at, area, green, yellow, red) in rows.decode((Int64, Int32?, Int64, Int64, Int64).self) {
            if at != current {
                close()
                current = at
            }
            let code = try Self.area(area)
            counts += [(code, .green, Int(green)), (code, .yellow, Int(yellow)), (code, .red, Int(red))]
        }
        close()
        return samples
    }

    /// Every publisher whose events were ever archived, by id: when its latest event was archived (however long
    /// ago) and its events per minute from `since`'s minute on (kept 7 days), ascending.
    public func publisherFeeds(since: Instant) async throws -> [PublisherFeed] {
        var feeds: [String: PublisherFeed] = [:]
        let latest = try await client.query(
            "SELECT publisher, hc_micros(max(last_archived_at)) FROM publisher_feed GROUP BY publisher",
            logger: logger
        )
        for try await (publisher, last) in latest.decode((String, Int64).self) {
            feeds[publisher] = PublisherFeed(
                publisher: publisher,
                lastEventAt: Instant(microsecondsSinceEpoch: last),
                minutes: []
            )
        }
        let minutes = try await client.query(
            """
            SELECT publisher, hc_micros(minute), sum(events)::int8 FROM publisher_ingest
            WHERE minute >= date_trunc('minute', hc_instant(\(since.microsecondsSinceEpoch)))
            GROUP BY publisher, minute ORDER BY publisher, minute
            """,
            logger: logger
        )
        for try await (publisher, minute, events) in minutes.decode((String, Int64, Int64).self) {
            feeds[publisher]?.minutes.append(
                IngestMinute(minute: Instant(microsecondsSinceEpoch: minute), events: Int(events))
            )
        }
        return feeds.values.sorted { $0.publisher.utf8.lexicographicallyPrecedes($1.publisher.utf8) }
    }

    /// The latest report of every projector that reported within the last day (older ones are pruned), by
    /// member.
    public func projectorReports() async throws -> [ProjectorReport] {
        let rows = try await client.query(
            """
            SELECT member, hc_micros(reported_at), state, lag, seconds_since_last_commit, assigned_partitions, healthy
            FROM projector_report WHERE reported_at > now() - interval '1 day' ORDER BY member
            """,
            logger: logger
        )
        var reports: [ProjectorReport] = []
        for try await (member, reported, state, lag, seconds, partitions, healthy) in rows.decode(
            (String, Int64, String, Int64, Double?, Int32, Bool).self
        ) {
            reports.append(
                ProjectorReport(
                    member: member,
                    reportedAt: Instant(microsecondsSinceEpoch: reported),
                    state: state,
                    lag: lag,
                    secondsSinceLastCommit: seconds,
                    assignedPartitions: Int(partitions),
                    healthy: healthy
                )
            )
        }
        return reports
    }

    static func area(_ value: Int32?) throws(OperationsStoreError) -> AreaCode? {
        guard let value else { return nil }
        guard let area = AreaCode(String(value)) else {
            throw OperationsStoreError(code: "invalid-area-code", context: "code_census area_code \(value)")
        }
        return area
    }

    static func status(_ value: String) throws(OperationsStoreError) -> CodeStatus {
        guard let status = CodeStatus(rawValue: value) else {
            throw OperationsStoreError(code: "invalid-status", context: "code_census status \(value)")
        }
        return status
    }
}

/// A stored operational fact could not be read as one.
public struct OperationsStoreError: Error, CustomStringConvertible {
    public var code: String
    public var context: String
    public var description: String { "\(code): \(context)" }
}

extension PostgresProjectionTransaction {
    /// Adds the events each publisher had newly archived in this transaction to its ingest of this minute and
    /// its feed (migration 0018), in `shard`'s rows; one statement. `ingest` is ordered by publisher
    /// (``PublisherIngest/tally(_:)``), so concurrent transactions sharing a shard lock its rows in one order.
    public func recordIngest(_ ingest: [PublisherIngest], shard: CounterShard) async throws {
        guard !ingest.isEmpty else { return }
        let publishers = ingest.map(\.publisher)
        let events = ingest.map { Int64($0.events) }
        try await connection.query(
            """
            WITH batch AS (
                SELECT p, n, coalesce(\(shard.partition)::int4, \(unescaped: Self.sharedShard)) AS shard
                FROM unnest(\(publishers)::text[], \(events)::int8[]) WITH ORDINALITY AS x(p, n, i)
                ORDER BY i
            ), minutes AS (
                INSERT INTO publisher_ingest (minute, publisher, shard, events, last_archived_at)
                SELECT date_trunc('minute', now()), p, shard, n, now() FROM batch
                ON CONFLICT (minute, publisher, shard) DO UPDATE
                    SET events = publisher_ingest.events + excluded.events, last_archived_at = excluded.last_archived_at
            )
            INSERT INTO publisher_feed (publisher, shard, events, last_archived_at)
            SELECT p, shard, n, now() FROM batch
            ON CONFLICT (publisher, shard) DO UPDATE
                SET events = publisher_feed.events + excluded.events,
                    last_archived_at = greatest(publisher_feed.last_archived_at, excluded.last_archived_at)
            """,
            logger: logger
        )
    }
}

extension ProjectionStore {
    /// Upserts a projector's report (migration 0018), keyed by its member.
    public func report(_ report: ProjectorReport) async throws {
        try await client.query(
            """
            INSERT INTO projector_report
                (member, reported_at, state, lag, seconds_since_last_commit, assigned_partitions, healthy)
            VALUES (\(report.member), hc_instant(\(report.reportedAt.microsecondsSinceEpoch)), \(report.state),
                    \(report.lag), \(report.secondsSinceLastCommit), \(Int32(clamping: report.assignedPartitions)),
                    \(report.healthy))
            ON CONFLICT (member) DO UPDATE
                SET reported_at = excluded.reported_at, state = excluded.state, lag = excluded.lag,
                    seconds_since_last_commit = excluded.seconds_since_last_commit,
                    assigned_partitions = excluded.assigned_partitions, healthy = excluded.healthy
            """,
            logger: logger
        )
    }

    /// Samples the code census unless this minute's sample exists (the first projector to ask in a minute takes
    /// it; the first sample of an hour also per area) and, when it took one, deletes what is kept no longer:
    /// samples after 30 days, publisher minutes after 7, projector reports after a day. One statement, which
    /// sums the census rows: ask once a minute. Returns whether it sampled.
    @discardableResult
    public func sampleOperationalFacts() async throws -> Bool {
        let rows = try await client.query(
            """
            WITH census AS (
                SELECT area_code, status, sum(codes)::int8 AS codes FROM code_census GROUP BY area_code, status
            ), sampled AS (
                INSERT INTO code_census_sample (sampled_at, green, yellow, red)
                SELECT date_trunc('minute', now()),
                       coalesce(sum(codes) FILTER (WHERE status = 'green'), 0),
                       coalesce(sum(codes) FILTER (WHERE status = 'yellow'), 0),
                       coalesce(sum(codes) FILTER (WHERE status = 'red'), 0)
                FROM census
                ON CONFLICT (sampled_at) DO NOTHING
                RETURNING sampled_at
            ), areas AS (
                INSERT INTO code_census_area_sample (sampled_at, area_code, green, yellow, red)
                SELECT s.sampled_at, c.area_code,
                       coalesce(sum(c.codes) FILTER (WHERE c.status = 'green'), 0),
                       coalesce(sum(c.codes) FILTER (WHERE c.status = 'yellow'), 0),
                       coalesce(sum(c.codes) FILTER (WHERE c.status = 'red'), 0)
                FROM sampled s CROSS JOIN census c
                WHERE c.codes <> 0 AND NOT EXISTS (
                    SELECT FROM code_census_area_sample WHERE sampled_at >= date_trunc('hour', s.sampled_at)
                )
                GROUP BY s.sampled_at, c.area_code
                ON CONFLICT ON CONSTRAINT code_census_area_sample_key DO NOTHING
            ), old_samples AS (
                DELETE FROM code_census_sample
                WHERE EXISTS (SELECT FROM sampled) AND sampled_at < now() - interval '30 days'
            ), old_area_samples AS (
                DELETE FROM code_census_area_sample
                WHERE EXISTS (SELECT FROM sampled) AND sampled_at < now() - interval '30 days'
            ), old_minutes AS (
                DELETE FROM publisher_ingest WHERE EXISTS (SELECT FROM sampled) AND minute < now() - interval '7 days'
            ), old_reports AS (
                DELETE FROM projector_report
                WHERE EXISTS (SELECT FROM sampled) AND reported_at < now() - interval '1 day'
            )
            SELECT count(*) FROM sampled
            """,
            logger: logger
        )
        for try await taken in rows.decode(Int64.self) { return taken > 0 }
        return false
    }
}
