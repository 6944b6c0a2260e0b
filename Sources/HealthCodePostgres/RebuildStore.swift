import Foundation
import HealthCodeCore
import Logging
import NIOCore
import PostgresNIO

/// PostgreSQL side of a blue/green rebuild (migration 0016): fresh tables created LIKE the live ones and
/// bulk-copied, checkpoints, the tail the live projector archived meanwhile, and the switch by renaming, which
/// also counts the code census (migration 0018) anew from the fresh codes.
///
/// The rebuilt tables are the derived ones, ``rebuiltTables``: person states, codes and presences. The archives,
/// the decision log, positions, dead letters, audits and registries are shared and never rebuilt. Tables are
/// named `<table>_rebuild` while built and `<table>_previous` once replaced; their indexes likewise, so that
/// the next rebuild's names are free. Indexes, triggers (the code-change announcements of migration 0009)
/// and grants are copied from the live tables when the bulk load is done, so a later migration that adds one
/// is rebuilt with it.
public struct RebuildStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    let ruleSets = RuleSetReferences()

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The tables a rebuild derives from the archives, in the order the projector locks them.
    public static let rebuiltTables = ["person_presence", "person_state", "person_code"]

    /// Runs `body` in one transaction on one connection.
    public func withTransaction<Result: Sendable>(
        _ body: (RebuildConnection) async throws -> Result
    ) async throws -> Result {
        try await client.withTransaction(logger: logger) { connection in
            try await body(RebuildConnection(connection: connection, ruleSets: ruleSets, logger: logger))
        }
    }
}

/// The operations of one rebuild transaction (see ``RebuildStore``).
public struct RebuildConnection: Sendable {
    let connection: PostgresConnection
    let ruleSets: RuleSetReferences
    let logger: Logger

    /// How long before the positions were read the tail's rows may have been archived (their `archived_at` is
    /// their transaction's start; a projector transaction lasts seconds).
    static let tailMargin = "1 hour"

    public func areaEvents(after sequence: Int64) async throws -> [(sequence: Int64, body: String)] {
        try await ProjectionStore.decodeAreaEvents(
            connection.query(ProjectionStore.areaEventsQuery(after: sequence), logger: logger)
        )
    }

    public func activations(
        after activation: Int64
    ) async throws
        -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]
    {
        try await RuleSetVersionStore.decodeActivations(
            connection.query(RuleSetVersionStore.activationsQuery(after: activation), logger: logger)
        )
    }

    /// The latest rebuild recorded, if any.
    public func latestRebuildRow() async throws -> RebuildRow? {
        let rows = try await connection.query(
            """
            SELECT p.rebuild_id, p.phase, hc_micros(p.evaluated_at), s.id, s.version, s.hash, p.activated_by,
                   p.position_topics, p.position_partitions, p.position_offsets, p.area_seq, p.total_events
            FROM rebuild_progress p LEFT JOIN rule_set s ON s.ref = p.rule_set
            ORDER BY p.rebuild_id DESC LIMIT 1
            """,
            logger: logger
        )
        for try await row in rows.decode(
            (Int64, String, Int64, String?, String?, String?, String?, [String], [Int32], [Int64], Int64, Int64).self
        ) {
            let (id, phase, evaluated, ruleSetID, version, hash, by, topics, partitions, offsets, area, total) = row
            var ruleSet: RuleSetIdentity?
            if let ruleSetID, let version, let hash {
                ruleSet = RuleSetIdentity(id: ruleSetID, version: version, hash: hash)
            }
            return RebuildRow(
                id: id,
                phase: phase,
                evaluatedAt: Instant(microsecondsSinceEpoch: evaluated),
                ruleSet: ruleSet,
                activatedBy: by,
                positions: zip(topics, zip(partitions, offsets)).map { ($0.0, $0.1.0, $0.1.1) },
                areaSequence: area,
                totalEvents: Int(total)
            )
        }
        return nil
    }

    /// Whether the tables the last switch replaced are still kept.
    public func previousTablesExist() async throws -> Bool {
        try await exists("person_state_previous")
    }

    private func exists(_ table: String) async throws -> Bool {
        let rows = try await connection.query("SELECT to_regclass(\(table)) IS NOT NULL", logger: logger)
        for try await exists in rows.decode(Bool.self) { return exists }
        return false
    }

    /// The stored rule set named by its hash or `id@version` whose file is stored.
    public func storedRuleSet(named name: String) async throws -> (identity: RuleSetIdentity, body: [UInt8])? {
        let rows = try await connection.query(
            """
            SELECT id, version, hash, body FROM rule_set
            WHERE (hash = \(name) OR id || '@' || version = \(name)) AND body IS NOT NULL
            ORDER BY ref DESC LIMIT 1
            """,
            logger: logger
        )
        for try await (id, version, hash, body) in rows.decode((String, String, String, String).self) {
            return (RuleSetIdentity(id: id, version: version, hash: hash), Array(body.utf8))
        }
        return nil
    }

    /// Creates the fresh tables (empty: no index yet, the live tables' columns, defaults, checks, storage and
    /// compression) and records the rebuild, its ranges, the live positions and the archive's size.
    public func recordRebuild(
        at instant: Instant,
        ruleSet: RuleSetIdentity?,
        activatedBy: String?,
        ranges: [String]
    ) async throws -> Int64 {
        for table in RebuildStore.rebuiltTables {
            try await connection.query(
                PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(table)_rebuild"),
                logger: logger
            )
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: "CREATE TABLE \(table)_rebuild (LIKE \(table) INCLUDING ALL EXCLUDING INDEXES)"
                ),
                logger: logger
            )
        }
        var reference: Int16?
        if let ruleSet { reference = try await references([ruleSet])[0] }
        let (topics, partitions, offsets) = try await livePositions()
        let rows = try await connection.query(
            """
            INSERT INTO rebuild_progress
                (phase, evaluated_at, rule_set, activated_by, position_topics, position_partitions, position_offsets,
                 positions_at, area_seq, total_events)
            SELECT 'building', hc_instant(\(instant.microsecondsSinceEpoch)), \(reference), \(activatedBy),
                   \(topics)::text[], \(partitions)::int4[], \(offsets)::int8[], now(),
                   (SELECT coalesce(max(seq), 0) FROM area_event_archive), (SELECT count(*) FROM event_archive)
            RETURNING rebuild_id
            """,
            logger: logger
        )
        var id: Int64?
        for try await value in rows.decode(Int64.self) { id = value }
        guard let id else { throw RebuildStoreError(code: "rebuild-not-recorded", context: "rebuild_progress") }
        // The last range has no end: "" stands for it in the array (no range ends at "").
        let highs = Array(ranges.dropFirst()) + [""]
        try await connection.query(
            """
            INSERT INTO rebuild_range (rebuild_id, low, high)
            SELECT \(id), l, nullif(h, '') FROM unnest(\(ranges)::text[], \(highs)::text[]) AS x(l, h)
            """,
            logger: logger
        )
        return id
    }

    /// Each partition's next offset; where several consumer groups project the topic, the least (a tail read
    /// from it holds everything the others archived too).
    private func livePositions() async throws -> ([String], [Int32], [Int64]) {
        let rows = try await connection.query(
            "SELECT topic, partition, min(next_offset) FROM consumer_offsets GROUP BY topic, partition",
            logger: logger
        )
        var topics: [String] = []
        var partitions: [Int32] = []
        var offsets: [Int64] = []
        for try await (topic, partition, offset) in rows.decode((String, Int32, Int64).self) {
            topics.append(topic)
            partitions.append(partition)
            offsets.append(offset)
        }
        return (topics, partitions, offsets)
    }

    /// The ranges of a rebuild: `low, high, next, done, events, people`.
    public func rangeRows(of rebuild: Int64) async throws -> [(String, String?, String?, Bool, Int, Int)] {
        let rows = try await connection.query(
            """
            SELECT low, high, next_subject, done, events, people FROM rebuild_range
            WHERE rebuild_id = \(rebuild) ORDER BY low
            """,
            logger: logger
        )
        var ranges: [(String, String?, String?, Bool, Int, Int)] = []
        for try await (low, high, next, done, events, people) in rows.decode(
            (String, String?, String?, Bool, Int64, Int64).self
        ) {
            ranges.append((low, high, next, done, Int(events), Int(people)))
        }
        return ranges
    }

    /// The next whole people of a range (`low` inclusive, `high` exclusive, after `next`), about `limit` archive
    /// rows, in pseudonym order (a person's events in no particular order: the fold does not depend on it);
    /// and whether the range has no one after them. Read by the archive's key, so each chunk reads only itself
    /// (the transaction's planner settings say so: it is the chunk's own transaction).
    public func archivedPeople(
        low: String,
        high: String?,
        after next: String?,
        limit: Int
    ) async throws -> (people: [(subject: String, events: [CloudEvent])], exhausted: Bool) {
        var query: PostgresQuery = """
            SELECT subject, source, event_id, type, hc_micros(time), hc_micros(recorded_time), body::text
            FROM event_archive WHERE subject >= \(low)
            """
        if let next {
            query.sql += " AND subject > $\(query.binds.count + 1)"
            query.binds.append(next)
        }
        if let high {
            query.sql += " AND subject < $\(query.binds.count + 1)"
            query.binds.append(high)
        }
        query.sql += " ORDER BY subject LIMIT \(max(1, limit))"
        // Read by the archive's key, each chunk from where the last one ended. Left to itself the planner may
        // prefer reading the whole archive and sorting it (a range of pseudonyms looks like a large share of
        // the table), for every chunk: `bench rebuild` spent most of PostgreSQL's time spilling such sorts.
        try await connection.query("SET LOCAL enable_seqscan = off", logger: logger)
        try await connection.query("SET LOCAL enable_bitmapscan = off", logger: logger)
        try await connection.query("SET LOCAL enable_sort = off", logger: logger)
        var people = try await Self.group(connection.query(query, logger: logger))
        let rows = people.reduce(0) { $0 + $1.events.count }
        guard rows >= limit, let last = people.last else { return (people, true) }
        if people.count > 1 {
            // The last person may go on past the limit: they start the next chunk.
            people.removeLast()
        } else {
            // One person with more rows than a chunk: all of them, in a chunk of their own.
            people = try await Self.group(
                connection.query(PersonArchiveRows.query(of: [last.subject], relevantFrom: nil), logger: logger)
            )
        }
        return (people, false)
    }

    /// Rows of archived events grouped by subject, in the rows' order.
    private static func group(_ rows: PostgresRowSequence) async throws -> [(subject: String, events: [CloudEvent])] {
        var people: [(subject: String, events: [CloudEvent])] = []
        for try await row in rows.decode(PersonArchiveRows.Row.self) {
            let event = try PersonArchiveRows.event(row)
            if people.last?.subject == row.0 {
                people[people.count - 1].events.append(event)
            } else {
                people.append((row.0, [event]))
            }
        }
        return people
    }

    /// Every archived event of `subjects`, read as the query API reads a person's archive.
    public func archivedEvents(of subjects: [String]) async throws -> [String: [CloudEvent]] {
        guard !subjects.isEmpty else { return [:] }
        return try await PersonArchiveRows.events(
            connection.query(PersonArchiveRows.query(of: subjects, relevantFrom: nil), logger: logger)
        )
    }

    /// Writes people into the fresh tables with COPY; with `replacing`, their rows there are deleted first.
    public func write(
        states: [(subject: String, state: PersonState)],
        codes: [(subject: String, decision: CodeDecision, evaluatedAt: Instant, area: AreaCode?)],
        presences: [(subject: String, presence: Presence)],
        replacing: Bool
    ) async throws {
        if replacing {
            let subjects = states.map(\.subject)
            for table in RebuildStore.rebuiltTables {
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(table)_rebuild WHERE subject = ANY($1::text[])",
                        binds: bindings(subjects)
                    ),
                    logger: logger
                )
            }
        }
        var buffer = ByteBuffer()
        for (subject, state) in states {
            CopyText.field(subject, to: &buffer)
            CopyText.field(state.storedJSON(), to: &buffer)
            CopyText.last(String(state.eventCount), to: &buffer)
        }
        try await copy(buffer, into: "person_state_rebuild", columns: ["subject", "state", "event_count"])

        buffer.clear()
        let references = try await references(codes.map(\.decision.ruleSet))
        for ((subject, decision, evaluatedAt, area), reference) in zip(codes, references) {
            CopyText.field(subject, to: &buffer)
            CopyText.field(decision.status.rawValue, to: &buffer)
            CopyText.field(decision.validUntil?.rfc3339, to: &buffer)
            CopyText.field(decision.storedJSON(), to: &buffer)
            CopyText.field(String(reference), to: &buffer)
            CopyText.field(evaluatedAt.rfc3339, to: &buffer)
            CopyText.last(area.map { String($0.value) }, to: &buffer)
        }
        try await copy(
            buffer,
            into: "person_code_rebuild",
            columns: ["subject", "status", "valid_until", "decision", "rule_set", "evaluated_at", "area_code"]
        )

        buffer.clear()
        for (subject, presence) in presences {
            CopyText.field(subject, to: &buffer)
            CopyText.field(String(presence.area.value), to: &buffer)
            CopyText.last(presence.at.rfc3339, to: &buffer)
        }
        try await copy(buffer, into: "person_presence_rebuild", columns: ["subject", "area_code", "at"])
    }

    private func bindings(_ subjects: [String]) -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(subjects)
        return bindings
    }

    private func copy(_ buffer: ByteBuffer, into table: String, columns: [String]) async throws {
        guard buffer.readableBytes > 0 else { return }
        try await connection.copyFrom(table: table, columns: columns, logger: logger) { writer in
            var rest = buffer
            while rest.readableBytes > 0, let slice = rest.readSlice(length: min(1 << 20, rest.readableBytes)) {
                try await writer.write(slice)
            }
        }
    }

    /// Records a range's checkpoint.
    public func checkpoint(
        rebuild: Int64,
        low: String,
        next: String?,
        done: Bool,
        events: Int,
        people: Int
    ) async throws {
        try await connection.query(
            """
            UPDATE rebuild_range SET next_subject = \(next), done = \(done), events = \(Int64(events)),
                   people = \(Int64(people))
            WHERE rebuild_id = \(rebuild) AND low = \(low)
            """,
            logger: logger
        )
        try await connection.query(
            "UPDATE rebuild_progress SET updated_at = now() WHERE rebuild_id = \(rebuild)",
            logger: logger
        )
    }

    /// Gives the fresh tables the live tables' indexes (suffixed `_rebuild`), triggers and grants, and
    /// statistics for the planner.
    public func finishBuild(_ rebuild: Int64) async throws {
        for index in try await indexes(of: "") {
            var definition = index.definition
            for qualified in ["public.\(index.table)", index.table] {
                definition = definition.replacingFirst(
                    "INDEX \(index.name) ON \(qualified) ",
                    with: "INDEX \(index.name)_rebuild ON \(index.table)_rebuild "
                )
            }
            try await connection.query(PostgresQuery(unsafeSQL: definition), logger: logger)
            if index.primary {
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            ALTER TABLE \(index.table)_rebuild ADD CONSTRAINT \(index.name)_rebuild
                            PRIMARY KEY USING INDEX \(index.name)_rebuild
                            """
                    ),
                    logger: logger
                )
            }
        }
        for table in RebuildStore.rebuiltTables {
            let triggers = try await connection.query(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = to_regclass(\(table)) AND NOT tgisinternal",
                logger: logger
            )
            var definitions: [String] = []
            for try await definition in triggers.decode(String.self) { definitions.append(definition) }
            for definition in definitions {
                var adapted = definition
                for qualified in ["public.\(table)", table] {
                    adapted = adapted.replacingFirst(" ON \(qualified) ", with: " ON \(table)_rebuild ")
                }
                try await connection.query(PostgresQuery(unsafeSQL: adapted), logger: logger)
            }
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        DO $$
                        DECLARE grant_row record;
                        BEGIN
                            FOR grant_row IN
                                SELECT grantee, privilege_type FROM information_schema.role_table_grants
                                WHERE table_schema = current_schema() AND table_name = '\(table)'
                                  AND grantee <> current_user
                            LOOP
                                EXECUTE format('GRANT %s ON %I TO %I', grant_row.privilege_type, '\(table)_rebuild',
                                               grant_row.grantee);
                            END LOOP;
                        END
                        $$
                        """
                ),
                logger: logger
            )
            try await connection.query(PostgresQuery(unsafeSQL: "ANALYZE \(table)_rebuild"), logger: logger)
        }
        try await connection.query(
            "UPDATE rebuild_progress SET phase = 'catching-up', updated_at = now() WHERE rebuild_id = \(rebuild)",
            logger: logger
        )
    }

    /// The indexes of the rebuilt tables named `<table><suffix>`: the table's base name, the index's, its
    /// definition and whether it is the primary key.
    private func indexes(
        of suffix: String
    ) async throws -> [(table: String, name: String, definition: String, primary: Bool)] {
        let names = RebuildStore.rebuiltTables.map { $0 + suffix }
        let rows = try await connection.query(
            """
            SELECT t.relname::text, i.relname::text, pg_get_indexdef(x.indexrelid), x.indisprimary
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY(\(names)::text[]) AND t.relnamespace = current_schema()::regnamespace
            ORDER BY t.relname, i.relname
            """,
            logger: logger
        )
        var indexes: [(table: String, name: String, definition: String, primary: Bool)] = []
        for try await (table, name, definition, primary) in rows.decode((String, String, String, Bool).self) {
            indexes.append((String(table.dropLast(suffix.count)), name, definition, primary))
        }
        return indexes
    }

    /// What was archived after the positions (people) and the area sequence (area codes), reading the new
    /// positions first: a row archived between the two reads is in this tail and the next one, never in none.
    public func tail(
        of rebuild: Int64,
        positions: [(topic: String, partition: Int32, next: Int64)],
        areaSequence: Int64
    ) async throws -> (
        subjects: [String], areaCodes: [String], positions: [(String, Int32, Int64)], areaSequence: Int64
    ) {
        let (topics, partitions, offsets) = try await livePositions()
        var newSequence = areaSequence
        for try await sequence in try await connection.query(
            "SELECT coalesce(max(seq), 0)::int8 FROM area_event_archive",
            logger: logger
        ).decode(Int64.self) {
            newSequence = sequence
        }
        let subjects = try await connection.query(
            """
            SELECT DISTINCT e.subject FROM event_archive e
            LEFT JOIN unnest(\(positions.map(\.topic))::text[], \(positions.map(\.partition))::int4[],
                             \(positions.map(\.next))::int8[]) AS p(t, pa, o)
                ON p.t = e.kafka_topic AND p.pa = e.kafka_partition
            WHERE e.archived_at >= (SELECT positions_at - interval '\(unescaped: Self.tailMargin)'
                                    FROM rebuild_progress WHERE rebuild_id = \(rebuild))
              AND e.kafka_offset >= coalesce(p.o, 0)
            """,
            logger: logger
        )
        var people: [String] = []
        for try await subject in subjects.decode(String.self) { people.append(subject) }
        let areas = try await connection.query(
            "SELECT area_code FROM area_event_archive WHERE seq > \(areaSequence) AND seq <= \(newSequence)",
            logger: logger
        )
        var codes: [String] = []
        for try await code in areas.decode(String.self) { codes.append(code) }
        return (people, codes, zip(topics, zip(partitions, offsets)).map { ($0.0, $0.1.0, $0.1.1) }, newSequence)
    }

    /// Moves a rebuild's positions and area sequence on.
    public func advance(
        _ rebuild: Int64,
        positions: [(topic: String, partition: Int32, next: Int64)],
        areaSequence: Int64
    ) async throws {
        try await connection.query(
            """
            UPDATE rebuild_progress
            SET position_topics = \(positions.map(\.topic))::text[],
                position_partitions = \(positions.map(\.partition))::int4[],
                position_offsets = \(positions.map(\.next))::int8[],
                positions_at = now(), area_seq = \(areaSequence), updated_at = now()
            WHERE rebuild_id = \(rebuild)
            """,
            logger: logger
        )
    }

    /// People in the fresh presence table present in any of `areas`.
    public func subjectsPresent(in areas: [ClosedRange<Int32>]) async throws -> [String] {
        let rows = try await connection.query(
            """
            SELECT DISTINCT p.subject FROM person_presence_rebuild p
            JOIN unnest(\(areas.map(\.lowerBound))::int4[], \(areas.map(\.upperBound))::int4[]) AS a(lo, hi)
                ON p.area_code BETWEEN a.lo AND a.hi
            """,
            logger: logger
        )
        var subjects: [String] = []
        for try await subject in rows.decode(String.self) { subjects.append(subject) }
        return subjects
    }

    /// Locks the live tables against writers, in the order the projector takes them (presences, states,
    /// codes), so that a projector transaction in flight finishes first and none deadlocks with the switch.
    /// Readers (the query API) go on.
    public func lockLiveTables() async throws {
        try await connection.query(
            PostgresQuery(
                unsafeSQL: "LOCK TABLE \(RebuildStore.rebuiltTables.joined(separator: ", ")) IN EXCLUSIVE MODE"
            ),
            logger: logger
        )
    }

    /// People in the archive, states and codes in the fresh tables.
    public func countRows() async throws -> (archivedPeople: Int, states: Int, codes: Int) {
        let rows = try await connection.query(
            """
            SELECT (SELECT count(DISTINCT subject) FROM event_archive), (SELECT count(*) FROM person_state_rebuild),
                   (SELECT count(*) FROM person_code_rebuild)
            """,
            logger: logger
        )
        for try await (people, states, codes) in rows.decode((Int64, Int64, Int64).self) {
            return (Int(people), Int(states), Int(codes))
        }
        return (0, 0, 0)
    }

    /// Up to `limit` fresh codes picked at random.
    public func sampleCodes(
        limit: Int
    ) async throws -> [(subject: String, decision: CodeDecision, evaluatedAt: Instant)] {
        let rows = try await connection.query(
            """
            SELECT c.subject, c.decision::text, r.id, r.version, r.hash, hc_micros(c.evaluated_at)
            FROM person_code_rebuild c JOIN rule_set r ON r.ref = c.rule_set
            ORDER BY random() LIMIT \(Int64(limit))
            """,
            logger: logger
        )
        var codes: [(subject: String, decision: CodeDecision, evaluatedAt: Instant)] = []
        for try await (subject, decision, id, version, hash, evaluated) in rows.decode(
            (String, String, String, String, String, Int64).self
        ) {
            codes.append(
                (
                    subject,
                    try CodeDecision(
                        storedJSON: Array(decision.utf8),
                        ruleSet: RuleSetIdentity(id: id, version: version, hash: hash)
                    ),
                    Instant(microsecondsSinceEpoch: evaluated)
                )
            )
        }
        return codes
    }

    /// The switch (see `RebuildSession.switchTables`); the live tables must be locked by this transaction.
    /// Returns the decision-log entries appended.
    public func switchTables(
        rebuild: Int64,
        activating ruleSet: RuleSetIdentity?,
        from effective: Instant,
        by activatedBy: String?
    ) async throws -> Int {
        // Every change of a code is in the decision log, a rebuild's too (its trigger names the rebuild).
        let logged = try await connection.query(
            """
            WITH logged AS (
                INSERT INTO decision_log
                    (subject, decided_at, old_status, new_status, valid_until, rule_set, trigger_source, trigger_id,
                     decision)
                SELECT f.subject, f.evaluated_at, l.status, f.status, f.valid_until, f.rule_set, 'urn:hc:rebuild',
                       \(String(rebuild)), f.decision
                FROM person_code_rebuild f LEFT JOIN person_code l USING (subject)
                WHERE l.subject IS NULL OR l.status <> f.status OR l.valid_until IS DISTINCT FROM f.valid_until
                RETURNING 1
            )
            SELECT count(*) FROM logged
            """,
            logger: logger
        )
        var count = 0
        for try await value in logged.decode(Int64.self) { count = Int(value) }
        if let ruleSet, let activatedBy {
            try await connection.query(
                """
                INSERT INTO rule_set_activation (rule_set, effective_from, activated_by)
                SELECT ref, hc_instant(\(effective.microsecondsSinceEpoch)), \(activatedBy)
                FROM rule_set WHERE hash = \(ruleSet.hash)
                """,
                logger: logger
            )
        }
        let live = try await indexes(of: "")
        let fresh = try await indexes(of: "_rebuild")
        for table in RebuildStore.rebuiltTables {
            try await connection.query(
                PostgresQuery(unsafeSQL: "ALTER TABLE \(table) RENAME TO \(table)_previous"),
                logger: logger
            )
        }
        for index in live {
            try await connection.query(
                PostgresQuery(unsafeSQL: "ALTER INDEX \(index.name) RENAME TO \(index.name)_previous"),
                logger: logger
            )
        }
        for table in RebuildStore.rebuiltTables {
            try await connection.query(
                PostgresQuery(unsafeSQL: "ALTER TABLE \(table)_rebuild RENAME TO \(table)"),
                logger: logger
            )
        }
        for index in fresh {
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: "ALTER INDEX \(index.name) RENAME TO \(index.name.dropLast("_rebuild".count))"
                ),
                logger: logger
            )
        }
        // The code census counted the previous codes: counted anew from the fresh ones (migration 0018).
        try await connection.query("SELECT hc_recount_code_census()", logger: logger)
        // The query APIs' kept codes are the previous tables': every one is dropped when this commits.
        try await connection.query("SELECT pg_notify(\(CodeChanges.channel), \(CodeChanges.flushAll))", logger: logger)
        try await connection.query(
            """
            UPDATE rebuild_progress SET phase = 'switched', switched_at = now(), updated_at = now()
            WHERE rebuild_id = \(rebuild)
            """,
            logger: logger
        )
        return count
    }

    /// Drops the `*_previous` tables; `false` if there were none.
    public func dropPrevious() async throws -> Bool {
        guard try await previousTablesExist() else { return false }
        try await connection.query(
            PostgresQuery(
                unsafeSQL: "DROP TABLE "
                    + RebuildStore.rebuiltTables.map { "\($0)_previous" }.joined(separator: ", ")
            ),
            logger: logger
        )
        try await connection.query(
            "UPDATE rebuild_progress SET phase = 'dropped', updated_at = now() WHERE phase = 'switched'",
            logger: logger
        )
        return true
    }

    /// Drops the fresh tables of an unfinished rebuild and records it abandoned; `false` if none was unfinished.
    public func abandon() async throws -> Bool {
        let rows = try await connection.query(
            """
            UPDATE rebuild_progress SET phase = 'abandoned', updated_at = now()
            WHERE phase IN ('building', 'catching-up')
            RETURNING rebuild_id
            """,
            logger: logger
        )
        var abandoned = false
        for try await _ in rows { abandoned = true }
        guard abandoned else { return false }
        try await connection.query(
            PostgresQuery(
                unsafeSQL: "DROP TABLE IF EXISTS "
                    + RebuildStore.rebuiltTables.map { "\($0)_rebuild" }.joined(separator: ", ")
            ),
            logger: logger
        )
        return true
    }

    /// The small numbers by which codes reference rule sets, registering any not yet in `rule_set`.
    private func references(_ identities: [RuleSetIdentity]) async throws -> [Int16] {
        try await PostgresProjectionTransaction(connection: connection, ruleSets: ruleSets, logger: logger)
            .references(identities)
    }
}

/// A `rebuild_progress` row as read.
public struct RebuildRow: Sendable {
    public var id: Int64
    public var phase: String
    public var evaluatedAt: Instant
    public var ruleSet: RuleSetIdentity?
    public var activatedBy: String?
    public var positions: [(topic: String, partition: Int32, next: Int64)]
    public var areaSequence: Int64
    public var totalEvents: Int
}

/// The rebuild's bookkeeping could not be written or read as expected.
public struct RebuildStoreError: Error, CustomStringConvertible {
    public var code: String
    public var context: String
    public var description: String { "\(code): \(context)" }
}

/// PostgreSQL's COPY text format: fields separated by tabs, rows by newlines, `\N` for null, and backslash,
/// tab, newline and carriage return escaped in values.
enum CopyText {
    static func field(_ value: String?, to buffer: inout ByteBuffer) {
        put(value, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
    }

    static func field(_ bytes: [UInt8], to buffer: inout ByteBuffer) {
        escape(bytes, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\t"))
    }

    static func last(_ value: String?, to buffer: inout ByteBuffer) {
        put(value, to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    private static func put(_ value: String?, to buffer: inout ByteBuffer) {
        guard let value else {
            buffer.writeStaticString("\\N")
            return
        }
        escape(value.utf8, to: &buffer)
    }

    private static func escape(_ bytes: some Collection<UInt8>, to buffer: inout ByteBuffer) {
        guard bytes.contains(where: { $0 == UInt8(ascii: "\\") || $0 < 0x20 }) else {
            buffer.writeBytes(bytes)
            return
        }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
            case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
            case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
            default: buffer.writeInteger(byte)
            }
        }
    }
}

extension String {
    /// The string with the first occurrence of `target` replaced (unchanged if none).
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
