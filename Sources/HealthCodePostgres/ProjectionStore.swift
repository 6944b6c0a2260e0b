import Foundation
import HealthCodeCore
import Logging
import PostgresNIO
import Synchronization

/// PostgreSQL access for the projector: everything one batch writes happens in one transaction
/// together with the consumer position, which is what makes the projection exactly-once.
public struct ProjectionStore: AreaEventArchive, Sendable {
    let client: PostgresClient
    let logger: Logger
    let ruleSets = RuleSetReferences()

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The stored next offset per partition; partitions never seen get a row at offset 0.
    public func positions(group: String, topic: String, partitions: [Int32]) async throws -> [Int32: Int64] {
        let groups = Array(repeating: group, count: partitions.count)
        let topics = Array(repeating: topic, count: partitions.count)
        try await client.query(
            """
            INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
            SELECT g, t, p, 0 FROM unnest(\(groups)::text[], \(topics)::text[], \(partitions)::int4[]) AS x(g, t, p)
            ON CONFLICT DO NOTHING
            """,
            logger: logger
        )
        var result: [Int32: Int64] = [:]
        let rows = try await client.query(
            """
            SELECT partition, next_offset FROM consumer_offsets
            WHERE consumer_group = \(group) AND topic = \(topic) AND partition = ANY(\(partitions)::int4[])
            """,
            logger: logger
        )
        for try await (partition, offset) in rows.decode((Int32, Int64).self) {
            result[partition] = offset
        }
        return result
    }

    /// Runs `body` in one transaction; it commits when `body` returns and rolls back when it throws.
    public func withTransaction<Result: Sendable>(
        _ body: (PostgresProjectionTransaction) async throws -> Result
    ) async throws -> Result {
        try await client.withTransaction(logger: logger) { connection in
            try await body(PostgresProjectionTransaction(connection: connection, ruleSets: ruleSets, logger: logger))
        }
    }

    /// Area events (designations and their retractions) archived after `sequence`, in order.
    public func areaEvents(after sequence: Int64) async throws -> [(sequence: Int64, body: String)] {
        try await Self.decodeAreaEvents(client.query(Self.areaEventsQuery(after: sequence), logger: logger))
    }

    /// Rule-set activations recorded after `activation`, with their files (``RuleSetVersionStore``).
    public func activations(
        after activation: Int64
    ) async throws
        -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]
    {
        try await RuleSetVersionStore.decodeActivations(
            client.query(RuleSetVersionStore.activationsQuery(after: activation), logger: logger)
        )
    }

    static func areaEventsQuery(after sequence: Int64) -> PostgresQuery {
        "SELECT seq, body::text FROM area_event_archive WHERE seq > \(sequence) ORDER BY seq"
    }

    static func decodeAreaEvents(_ rows: PostgresRowSequence) async throws -> [(sequence: Int64, body: String)] {
        var result: [(sequence: Int64, body: String)] = []
        for try await (sequence, body) in rows.decode((Int64, String).self) {
            result.append((sequence, body))
        }
        return result
    }
}

/// The operations of one projector transaction.
public struct PostgresProjectionTransaction: AreaEventArchive, Sendable {
    let connection: PostgresConnection
    let ruleSets: RuleSetReferences
    let logger: Logger

    /// Moves the partition's position from `expected` to `next` by compare-and-set. Returns `false`
    /// (and changes nothing) when the stored position is not `expected`: another consumer moved it,
    /// so this one lost the partition or is behind, and must not apply its batch.
    public func advancePosition(
        group: String,
        topic: String,
        partition: Int32,
        expected: Int64,
        next: Int64
    ) async throws -> Bool {
        let rows = try await connection.query(
            """
            UPDATE consumer_offsets SET next_offset = \(next), updated_at = now()
            WHERE consumer_group = \(group) AND topic = \(topic) AND partition = \(partition)
              AND next_offset = \(expected)
            RETURNING next_offset
            """,
            logger: logger
        )
        var updated = false
        for try await _ in rows { updated = true }
        return updated
    }

    /// Rule-set activations recorded after `activation`, read on this transaction's connection.
    public func activations(
        after activation: Int64
    ) async throws
        -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]
    {
        try await RuleSetVersionStore.decodeActivations(
            connection.query(RuleSetVersionStore.activationsQuery(after: activation), logger: logger)
        )
    }

    /// Area events archived after `sequence`, in order, read on this transaction's connection.
    public func areaEvents(after sequence: Int64) async throws -> [(sequence: Int64, body: String)] {
        try await ProjectionStore.decodeAreaEvents(
            connection.query(ProjectionStore.areaEventsQuery(after: sequence), logger: logger)
        )
    }

    /// The stored position of a partition.
    public func position(group: String, topic: String, partition: Int32) async throws -> Int64? {
        let rows = try await connection.query(
            """
            SELECT next_offset FROM consumer_offsets
            WHERE consumer_group = \(group) AND topic = \(topic) AND partition = \(partition)
            """,
            logger: logger
        )
        for try await offset in rows.decode(Int64.self) { return offset }
        return nil
    }

    /// Appends person events to the archive; returns where on Kafka the new ones (not archived before)
    /// were. A row keeps the event's envelope in its columns and only the rest in `body`
    /// (``CloudEvent/archivedRemainder()``); `recorded_time` is null for an event without `recordedtime`,
    /// `arrived_at` holds a journey's arrival (null for other events).
    public func archivePersonEvents(_ events: [ArchivedEvent]) async throws -> Set<EventPosition> {
        try await archive(
            events,
            into: "event_archive",
            subjectColumn: "subject",
            bodies: events.map { $0.event.archivedRemainder() },
            recorded: events.map { $0.event.recordedTime?.microsecondsSinceEpoch ?? Self.noInstant },
            arrivals: events.map { event in
                if case .travel(let travel) = event.event.payload { return travel.arrivedAt.microsecondsSinceEpoch }
                return Self.noInstant
            }
        )
    }

    /// Appends area events to the reference archive, each whole; returns where on Kafka the new ones were.
    public func archiveAreaEvents(_ events: [ArchivedEvent]) async throws -> Set<EventPosition> {
        try await archive(
            events,
            into: "area_event_archive",
            subjectColumn: "area_code",
            bodies: events.map(\.body),
            recorded: events.map(\.event.effectiveRecordedTime.microsecondsSinceEpoch),
            arrivals: nil
        )
    }

    /// Stands for a null instant in an array of instants sent as `int8[]` (which holds no nulls here).
    private static let noInstant = Int64.min

    /// One insert for the whole batch; a `source`+`id` archived before inserts nothing. The new rows
    /// are named by their Kafka partition and offset, which is cheaper to return and compare than
    /// their keys. `table` and `subjectColumn` are fixed names from the two callers above, never input.
    private func archive(
        _ events: [ArchivedEvent],
        into table: String,
        subjectColumn: String,
        bodies: [String],
        recorded: [Int64],
        arrivals: [Int64]?
    ) async throws -> Set<EventPosition> {
        guard !events.isEmpty else { return [] }
        let subjects = events.map(\.event.subject)
        let sources = events.map(\.event.source)
        let ids = events.map(\.event.id)
        let types = events.map(\.event.type.rawValue)
        let times = events.map(\.event.time.microsecondsSinceEpoch)
        let topics = events.map(\.topic)
        let partitions = events.map(\.partition)
        let offsets = events.map(\.offset)
        // The area archive has no arrival column: its rows get the sentinel, which selects nothing into it.
        let arrivalColumn = arrivals == nil ? "" : ", arrived_at"
        let arrivalValue = arrivals == nil ? "" : ", hc_instant(nullif(a, '\(Self.noInstant)'::int8))"
        let rows = try await connection.query(
            """
            INSERT INTO \(unescaped: table)
                (\(unescaped: subjectColumn), source, event_id, type, time, recorded_time, body, kafka_topic,
                 kafka_partition, kafka_offset\(unescaped: arrivalColumn))
            SELECT s, src, i, ty, hc_instant(t), hc_instant(nullif(r, \(Self.noInstant))), b::json, tp, p, o
                   \(unescaped: arrivalValue)
            FROM unnest(\(subjects)::text[], \(sources)::text[], \(ids)::text[], \(types)::text[],
                        \(times)::int8[], \(recorded)::int8[], \(bodies)::text[], \(topics)::text[],
                        \(partitions)::int4[], \(offsets)::int8[], \(arrivals ?? recorded)::int8[])
                AS x(s, src, i, ty, t, r, b, tp, p, o, a)
            ON CONFLICT DO NOTHING
            RETURNING kafka_partition, kafka_offset
            """,
            logger: logger
        )
        var inserted = Set<EventPosition>(minimumCapacity: events.count)
        for try await (partition, offset) in rows.decode((Int32, Int64).self) {
            inserted.insert(EventPosition(partition: partition, offset: offset))
        }
        return inserted
    }

    /// Loads and locks (in pseudonym order, so that lockers never deadlock) the state and code of the
    /// given people. People never seen are absent, and so
    /// are people another transaction holds when `skipLocked` (their holder evaluates them anyway).
    ///
    /// The codes are read by a statement of their own once the states are locked: after waiting for a
    /// person's lock (a designation job or the re-evaluator held it), a locking statement re-reads only
    /// the rows it locks, and a code joined to it would be the one from before the wait. Compared with
    /// that stale code, a change the lock holder committed would be logged twice, or a real change not
    /// at all, and go unannounced to the query APIs' kept codes.
    public func loadPeople(_ subjects: [String], skipLocked: Bool = false) async throws -> [String: StoredPerson] {
        guard !subjects.isEmpty else { return [:] }
        let states = try await connection.query(
            """
            SELECT subject, state::text FROM person_state
            WHERE subject = ANY(\(subjects)::text[])
            ORDER BY subject
            FOR UPDATE \(unescaped: skipLocked ? "SKIP LOCKED" : "")
            """,
            logger: logger
        )
        var people: [String: StoredPerson] = [:]
        for try await (subject, state) in states.decode((String, ByteBuffer).self) {
            people[subject] = StoredPerson(state: try PersonState(storedJSON: state.readableBytesView), code: nil)
        }
        guard !people.isEmpty else { return people }
        let codes = try await connection.query(
            """
            SELECT c.subject, c.decision::text, r.id, r.version, r.hash
            FROM person_code c JOIN rule_set r ON r.ref = c.rule_set
            WHERE c.subject = ANY(\(Array(people.keys))::text[])
            """,
            logger: logger
        )
        for try await (subject, decision, id, version, hash) in codes.decode(
            (String, ByteBuffer, String, String, String).self
        ) {
            people[subject]?.code = try CodeDecision(
                storedJSON: decision.readableBytesView,
                ruleSet: RuleSetIdentity(id: id, version: version, hash: hash)
            )
        }
        return people
    }

    /// The archived events of `subjects` that can still matter to evaluations at `cutoff` or later, and how
    /// many events each has archived in all (a state folded from them counts the others as left out).
    public func archivedEvents(
        of subjects: [String],
        relevantFrom cutoff: Instant
    ) async throws -> [String: (events: [CloudEvent], total: Int)] {
        guard !subjects.isEmpty else { return [:] }
        let rows = try await connection.query(
            PersonArchiveRows.query(of: subjects, relevantFrom: cutoff),
            logger: logger
        )
        let events = try await PersonArchiveRows.events(rows)
        let counts = try await connection.query(
            "SELECT subject, count(*)::int8 FROM event_archive WHERE subject = ANY(\(subjects)::text[]) GROUP BY subject",
            logger: logger
        )
        var archived: [String: (events: [CloudEvent], total: Int)] = [:]
        for try await (subject, count) in counts.decode((String, Int64).self) {
            archived[subject] = (events[subject] ?? [], Int(count))
        }
        return archived
    }

    /// Writes people's folded states.
    public func saveStates(_ people: [(subject: String, state: PersonState)]) async throws {
        guard !people.isEmpty else { return }
        let subjects = people.map(\.subject)
        let states = people.map { String(decoding: $0.state.storedJSON(), as: UTF8.self) }
        let counts = people.map { Int32(clamping: $0.state.eventCount) }
        try await connection.query(
            """
            INSERT INTO person_state (subject, state, event_count, updated_at)
            SELECT s, st::json, n, now() FROM unnest(\(subjects)::text[], \(states)::text[], \(counts)::int4[])
                AS x(s, st, n)
            ON CONFLICT (subject) DO UPDATE
                SET state = excluded.state, event_count = excluded.event_count, updated_at = excluded.updated_at
            """,
            logger: logger
        )
    }

    /// Writes people's materialised codes, each with the area it is counted in (the person's last known area),
    /// moves their counts in the code census (`code_census`, migration 0018) and announces the `changed` ones on
    /// ``CodeChanges/channel``.
    ///
    /// One statement: every code written takes one from the census row of its stored area and colour (read in
    /// the statement's snapshot, before the write: exactly what was counted) and adds one to its new area and
    /// colour, in `shard`'s rows, locked in a fixed order. The announcement is part of this transaction:
    /// listeners hear of it when it commits, never before and never for a rolled-back write.
    public func saveCodes(
        _ codes: [(subject: String, decision: CodeDecision, area: AreaCode?)],
        evaluatedAt: Instant,
        changed: [String],
        shard: CounterShard
    ) async throws {
        guard !codes.isEmpty else { return }
        let subjects = codes.map(\.subject)
        let statuses = codes.map(\.decision.status.rawValue)
        let validUntil = codes.map { $0.decision.validUntil?.microsecondsSinceEpoch ?? Int64.min }
        let decisions = codes.map { String(decoding: $0.decision.storedJSON(), as: UTF8.self) }
        let areas = codes.map { $0.area?.value ?? Self.unknownArea }
        let ruleSets = try await references(codes.map(\.decision.ruleSet))
        let evaluated = evaluatedAt.microsecondsSinceEpoch
        let announcements = CodeChanges.payloads(changed)
        // One statement: the write and the census run whether or not the notifications select anything.
        try await connection.query(
            """
            WITH stored AS (
                SELECT area_code, status FROM person_code WHERE subject = ANY(\(subjects)::text[])
            ), saved AS (
                INSERT INTO person_code (subject, status, valid_until, decision, rule_set, evaluated_at, area_code)
                SELECT s, st, hc_instant(v), d::json, r, hc_instant(\(evaluated)), nullif(a, \(Self.unknownArea))
                FROM unnest(\(subjects)::text[], \(statuses)::text[], \(validUntil)::int8[], \(decisions)::text[],
                            \(ruleSets)::int2[], \(areas)::int4[]) AS x(s, st, v, d, r, a)
                ON CONFLICT (subject) DO UPDATE
                    SET status = excluded.status, valid_until = excluded.valid_until, decision = excluded.decision,
                        rule_set = excluded.rule_set, evaluated_at = excluded.evaluated_at,
                        area_code = excluded.area_code
                RETURNING area_code, status
            ), moved AS (
                SELECT area_code, status, sum(n) AS n
                FROM (SELECT area_code, status, 1 AS n FROM saved
                      UNION ALL SELECT area_code, status, -1 FROM stored) AS m
                GROUP BY area_code, status HAVING sum(n) <> 0
            ), counted AS (
                INSERT INTO code_census (area_code, status, shard, codes)
                SELECT area_code, status, coalesce(\(shard.partition)::int4, \(unescaped: Self.sharedShard)), n
                FROM moved ORDER BY area_code, status
                ON CONFLICT ON CONSTRAINT code_census_key DO UPDATE SET codes = code_census.codes + excluded.codes
            )
            SELECT pg_notify(\(CodeChanges.channel), n) FROM unnest(\(announcements)::text[]) AS a(n)
            """,
            logger: logger
        )
    }

    /// Stands for "no area" in an array of area codes (no area code is 0).
    static let unknownArea: Int32 = 0

    /// The counter shard of a transaction of no partition (``CounterShard/shared``, migration 0018): one of 16,
    /// picked by the connection, so that concurrent transactions rarely share one.
    static let sharedShard = "-2 - pg_backend_pid() % 16"

    /// Serialises transactions that read designations against those that add them: every projector
    /// transaction takes this lock shared before it reads the designations; one that archives new
    /// area events takes it exclusively. So a person's presence and a new designation for its area
    /// are never committed concurrently without one of the two transactions seeing the other.
    public func lockDesignations(exclusive: Bool) async throws {
        if exclusive {
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.designationLock))", logger: logger)
        } else {
            try await connection.query("SELECT pg_advisory_xact_lock_shared(\(Self.designationLock))", logger: logger)
        }
    }

    /// "HCDESIGN" as a 64-bit advisory-lock key.
    private static let designationLock: Int64 = 0x4843_4445_5349_474E

    /// Indexes where people were, for re-evaluation when their areas' designations change. Called once
    /// per newly archived event, so each presence is recorded once. A row holds only what re-evaluation
    /// looks up (who, where, when), not the event it came from: the archive has that.
    public func recordPresences(_ presences: [(subject: String, presence: Presence)]) async throws {
        guard !presences.isEmpty else { return }
        let subjects = presences.map(\.subject)
        let areas = presences.map(\.presence.area.value)
        let instants = presences.map(\.presence.at.microsecondsSinceEpoch)
        try await connection.query(
            """
            INSERT INTO person_presence (subject, area_code, at)
            SELECT s, a, hc_instant(t)
            FROM unnest(\(subjects)::text[], \(areas)::int4[], \(instants)::int8[]) AS x(s, a, t)
            """,
            logger: logger
        )
    }

    /// People whose materialised code is due (its `validUntil` is at or before `instant`), oldest first,
    /// skipping those another transaction holds.
    public func dueSubjects(at instant: Instant, limit: Int) async throws -> [String] {
        let rows = try await connection.query(
            """
            SELECT c.subject FROM person_code c
            WHERE c.valid_until <= hc_instant(\(instant.microsecondsSinceEpoch))
            ORDER BY c.valid_until LIMIT \(Int64(limit))
            """,
            logger: logger
        )
        var subjects: [String] = []
        for try await subject in rows.decode(String.self) { subjects.append(subject) }
        return subjects
    }

    /// Appends code changes to the decision log.
    public func appendDecisions(_ records: [DecisionRecord]) async throws {
        guard !records.isEmpty else { return }
        let subjects = records.map(\.subject)
        let decidedAt = records.map(\.decidedAt.microsecondsSinceEpoch)
        let old = records.map { $0.oldStatus?.rawValue ?? "" }
        let new = records.map(\.decision.status.rawValue)
        let validUntil = records.map { $0.decision.validUntil?.microsecondsSinceEpoch ?? Int64.min }
        let ruleSets = try await references(records.map(\.decision.ruleSet))
        let triggerSources = records.map { $0.trigger?.source ?? "" }
        let triggerIDs = records.map { $0.trigger?.id ?? "" }
        let decisions = records.map { String(decoding: $0.decision.storedJSON(), as: UTF8.self) }
        try await connection.query(
            """
            INSERT INTO decision_log
                (subject, decided_at, old_status, new_status, valid_until, rule_set, trigger_source, trigger_id,
                 decision)
            SELECT s, hc_instant(d), NULLIF(o, ''), n, hc_instant(v), r, NULLIF(ts, ''), NULLIF(ti, ''), j::json
            FROM unnest(\(subjects)::text[], \(decidedAt)::int8[], \(old)::text[], \(new)::text[],
                        \(validUntil)::int8[], \(ruleSets)::int2[], \(triggerSources)::text[], \(triggerIDs)::text[],
                        \(decisions)::text[]) AS x(s, d, o, n, v, r, ts, ti, j)
            """,
            logger: logger
        )
    }

}

extension PostgresProjectionTransaction {
    /// The small numbers by which stored codes and decisions reference `identities`' rule sets, in order.
    func references(_ identities: [RuleSetIdentity]) async throws -> [Int16] {
        var known: [String: Int16] = [:]
        var references: [Int16] = []
        references.reserveCapacity(identities.count)
        for identity in identities {
            if let reference = known[identity.hash] ?? ruleSets.reference(of: identity.hash) {
                references.append(reference)
                continue
            }
            let reference = try await register(identity)
            known[identity.hash] = reference
            references.append(reference)
        }
        return references
    }

    /// Registers a rule set in `rule_set` (once: the hash is unique) and returns its reference. A row this
    /// transaction inserted is not remembered beyond it, since the transaction may still roll back; a row
    /// found there was committed (by whoever registered it first) and is remembered for good: rule sets are
    /// never removed. Only the identity is stored, never the rules.
    private func register(_ identity: RuleSetIdentity) async throws -> Int16 {
        // Inserting only when absent keeps the identity's sequence from advancing on every call.
        let inserted = try await connection.query(
            """
            INSERT INTO rule_set (id, version, hash)
            SELECT \(identity.id), \(identity.version), \(identity.hash)
            WHERE NOT EXISTS (SELECT FROM rule_set WHERE hash = \(identity.hash))
            ON CONFLICT (hash) DO NOTHING
            RETURNING ref
            """,
            logger: logger
        )
        for try await reference in inserted.decode(Int16.self) { return reference }
        // Not inserted: it exists, possibly committed by another transaction while this one waited for it.
        let rows = try await connection.query(
            "SELECT ref FROM rule_set WHERE hash = \(identity.hash)",
            logger: logger
        )
        for try await reference in rows.decode(Int16.self) {
            ruleSets.remember(reference, for: identity.hash)
            return reference
        }
        throw RuleSetRegistrationError()
    }
}

/// The references of rule sets already committed to `rule_set`, by hash, shared by a store's transactions.
final class RuleSetReferences: Sendable {
    private let references = Mutex<[String: Int16]>([:])

    func reference(of hash: String) -> Int16? { references.withLock { $0[hash] } }

    func remember(_ reference: Int16, for hash: String) { references.withLock { $0[hash] = reference } }
}

/// A rule set could be neither registered nor found in `rule_set` (it was removed meanwhile).
struct RuleSetRegistrationError: Error, CustomStringConvertible {
    let code = "rule-set-unregistered"
    var description: String { "\(code): the rule set in force is not in rule_set and could not be added" }
}
