import HealthCodeCore
import HealthCodePostgres
import HealthCodeProjector
import Logging
import PostgresNIO

extension Backbone {
    /// A blue/green rebuild of the projection in `postgres` (the migrating role: it creates, renames and drops
    /// tables), with `configured` deciding before any rule-set activation, as for the projector.
    public static func rebuild(
        postgres: PostgresClient,
        configuration: Rebuild.Configuration,
        configured: RuleSet,
        logger: Logger
    ) -> Rebuild {
        Rebuild(
            storage: RebuildStore(client: postgres, logger: logger),
            configuration: configuration,
            configured: configured,
            logger: logger
        )
    }
}

extension RebuildStore: RebuildStorage {
    public func withRebuildTransaction<Result: Sendable>(
        _ body: (any RebuildSession) async throws -> Result
    ) async throws -> Result {
        // A rebuild's own refusals pass as they are; anything else from the database is redacted.
        do {
            return try await withTransaction { try await body($0) }
        } catch let error as PostgresTransactionError {
            if let refusal = error.closureError as? RebuildError { throw refusal }
            // The server broke a lock cycle (deadlock_detected) or a lock wait ran out (lock_not_available).
            if let state = (error.closureError as? PSQLError)?.serverInfo?[.sqlState],
                state == "40P01" || state == "55P03"
            {
                throw RebuildError(code: RebuildError.lockConflict, context: "sqlstate \(state); rolled back")
            }
            if error.closureError is CancellationError { throw CancellationError() }
            throw RedactedError(SafeErrorDescription(error).description)
        } catch let error as RebuildError {
            throw error
        } catch {
            return try await redactingErrors { throw error }
        }
    }
}

extension RebuildConnection: RebuildSession {
    public func latestRebuild() async throws -> RebuildRecord? {
        guard let row = try await latestRebuildRow() else { return nil }
        return RebuildRecord(
            id: row.id,
            phase: RebuildRecord.Phase(rawValue: row.phase) ?? .dropped,
            evaluatedAt: row.evaluatedAt,
            ruleSet: row.ruleSet,
            activatedBy: row.activatedBy,
            positions: row.positions.map { RebuildPosition(topic: $0.topic, partition: $0.partition, next: $0.next) },
            areaSequence: row.areaSequence,
            totalEvents: row.totalEvents
        )
    }

    public func beginRebuild(
        at instant: Instant,
        ruleSet: RuleSetIdentity?,
        activatedBy: String?,
        ranges: [String]
    ) async throws -> RebuildRecord {
        let id = try await recordRebuild(at: instant, ruleSet: ruleSet, activatedBy: activatedBy, ranges: ranges)
        guard let record = try await latestRebuild(), record.id == id else {
            throw RebuildError(code: "rebuild-not-recorded", context: "rebuild \(id)")
        }
        return record
    }

    public func ranges(of rebuild: Int64) async throws -> [RebuildRange] {
        try await rangeRows(of: rebuild).map { row in
            RebuildRange(low: row.0, high: row.1, next: row.2, done: row.3, events: row.4, people: row.5)
        }
    }

    public func archivedPeople(in range: RebuildRange, limit: Int) async throws -> ArchiveChunk {
        let (people, exhausted) = try await archivedPeople(
            low: range.low,
            high: range.high,
            after: range.next,
            limit: limit
        )
        return ArchiveChunk(people: people, exhausted: exhausted)
    }

    public func write(_ people: [RebuiltPerson], replacing: Bool) async throws {
        try await write(
            states: people.map { ($0.subject, $0.state) },
            codes: people.map { ($0.subject, $0.decision, $0.evaluatedAt, $0.state.lastKnownArea) },
            presences: people.flatMap { person in person.presences.map { (person.subject, $0) } },
            replacing: replacing
        )
    }

    public func checkpoint(
        rebuild: Int64,
        range: RebuildRange,
        next: String?,
        done: Bool,
        events: Int,
        people: Int
    ) async throws {
        try await checkpoint(rebuild: rebuild, low: range.low, next: next, done: done, events: events, people: people)
    }

    public func tail(of rebuild: RebuildRecord) async throws -> RebuildTail {
        let tail = try await tail(
            of: rebuild.id,
            positions: rebuild.positions.map { ($0.topic, $0.partition, $0.next) },
            areaSequence: rebuild.areaSequence
        )
        return RebuildTail(
            subjects: tail.subjects,
            areaCodes: tail.areaCodes,
            positions: tail.positions.map { RebuildPosition(topic: $0.0, partition: $0.1, next: $0.2) },
            areaSequence: tail.areaSequence
        )
    }

    public func advance(_ rebuild: Int64, past tail: RebuildTail) async throws {
        try await advance(
            rebuild,
            positions: tail.positions.map { ($0.topic, $0.partition, $0.next) },
            areaSequence: tail.areaSequence
        )
    }

    public func counts() async throws -> RebuildCounts {
        let (people, states, codes) = try await countRows()
        return RebuildCounts(archivedPeople: people, states: states, codes: codes)
    }

    public func switchTables(_ rebuild: RebuildRecord) async throws -> Int {
        try await switchTables(
            rebuild: rebuild.id,
            activating: rebuild.ruleSet,
            from: rebuild.evaluatedAt,
            by: rebuild.activatedBy
        )
    }
}
