import Foundation
import HealthCodeCore
import Logging
import PostgresNIO

/// Everything stored about one person, for explanations and subject-access exports.
public struct PersonRecordStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The person's archived events that can still matter to evaluations at `cutoff` or later, by `time`,
    /// `id` and `source`: all but the exposures, declarations and journeys (by their arrival) before `cutoff`,
    /// whose bodies are neither sent nor parsed; with `end`, only those that happened at or before it.
    public func events(
        of subject: String,
        relevantFrom cutoff: Instant?,
        through end: Instant? = nil
    ) async throws -> [ArchivedPersonEvent] {
        let rows = try await client.query(
            PersonArchiveRows.query(of: [subject], relevantFrom: cutoff, through: end),
            logger: logger
        )
        return try await PersonArchiveRows.events(rows)[subject, default: []].map(ArchivedPersonEvent.init)
    }

    /// One archived event as a timeline lists it: `source, id, type, time, recorded` (its `recordedtime`, or
    /// its `time` when it has none).
    public typealias TimelineRow = (source: String, id: String, type: String, time: Instant, recorded: Instant)

    /// One page of the person's timeline, in archive order (`time`, `id`, `source`): the `limit` latest events
    /// before `position` (`time`, `id`, `source`), or, for the first page (`position` nil), at or before
    /// `at` followed by those after `at` while the page has room; and whether earlier events exist. Reads no
    /// event body.
    public func timeline(
        of subject: String,
        at: Instant,
        before position: (time: Instant, id: String, source: String)?,
        limit: Int
    ) async throws -> (events: [TimelineRow], earlier: Bool) {
        let fetch = Int64(limit + 1)
        let rows: PostgresRowSequence
        if let position {
            rows = try await client.query(
                """
                SELECT source, event_id, type, hc_micros(time), hc_micros(coalesce(recorded_time, time))
                FROM event_archive
                WHERE subject = \(subject)
                  AND (time, event_id, source) < (hc_instant(\(position.time.microsecondsSinceEpoch)), \(position.id),
                                                  \(position.source))
                ORDER BY time DESC, event_id DESC, source DESC LIMIT \(fetch)
                """,
                logger: logger
            )
        } else {
            rows = try await client.query(
                """
                SELECT source, event_id, type, hc_micros(time), hc_micros(coalesce(recorded_time, time))
                FROM event_archive
                WHERE subject = \(subject) AND time <= hc_instant(\(at.microsecondsSinceEpoch))
                ORDER BY time DESC, event_id DESC, source DESC LIMIT \(fetch)
                """,
                logger: logger
            )
        }
        var events = try await Self.timelineRows(rows)
        let earlier = events.count > limit
        events = Array(events.prefix(limit).reversed())
        if position == nil, events.count < limit {
            let later = try await client.query(
                """
                SELECT source, event_id, type, hc_micros(time), hc_micros(coalesce(recorded_time, time))
                FROM event_archive
                WHERE subject = \(subject) AND time > hc_instant(\(at.microsecondsSinceEpoch))
                ORDER BY time, event_id, source LIMIT \(Int64(limit - events.count))
                """,
                logger: logger
            )
            events += try await Self.timelineRows(later)
        }
        return (events, earlier)
    }

    private static func timelineRows(_ rows: PostgresRowSequence) async throws -> [TimelineRow] {
        var events: [TimelineRow] = []
        for try await (source, id, type, time, recorded) in rows.decode((String, String, String, Int64, Int64).self) {
            events.append(
                (
                    source, id, type, Instant(microsecondsSinceEpoch: time),
                    Instant(microsecondsSinceEpoch: recorded)
                )
            )
        }
        return events
    }

    /// Every row about `subject` in every table keyed by person (each table with a `subject`
    /// column), as a JSON array per table name. Tables added by later migrations are included
    /// without change here, so an export never misses what is held. Rows stored compactly read as
    /// they did before schema 14: archived events whole (``CloudEvent/archived(subject:source:id:type:time:recordedTime:remainder:)``),
    /// states in the readable layout (``PersonState/readableJSON()``), codes and decisions with the rule
    /// set that decided instead of its number.
    public func export(of subject: String) async throws -> [(table: String, rowsJSON: String)] {
        let tables = try await client.query(
            """
            SELECT c.table_name::text FROM information_schema.columns c
            JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = current_schema() AND c.column_name = 'subject' AND t.table_type = 'BASE TABLE'
            ORDER BY c.table_name
            """,
            logger: logger
        )
        var names: [String] = []
        for try await name in tables.decode(String.self) { names.append(name) }
        var export: [(table: String, rowsJSON: String)] = []
        for name in names {
            switch name {
            case "event_archive": export.append((name, try await archiveRows(of: subject)))
            case "person_state": export.append((name, try await stateRows(of: subject)))
            case "person_code", "decision_log": export.append((name, try await decidedRows(in: name, of: subject)))
            default: export.append((name, try await rows(in: name, of: subject)))
            }
        }
        return export
    }

    /// The rows of `table` about `subject` as a JSON array, each row as PostgreSQL's `to_jsonb` renders it.
    private func rows(in table: String, of subject: String) async throws -> String {
        let quoted = "\"" + table.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        var bindings = PostgresBindings()
        bindings.append(subject)
        let query = PostgresQuery(
            unsafeSQL: "SELECT coalesce(json_agg(to_jsonb(t)), '[]')::text FROM \(quoted) t WHERE subject = $1",
            binds: bindings
        )
        for try await json in try await client.query(query, logger: logger).decode(String.self) { return json }
        return "[]"
    }

    /// Codes or decisions (`table` is one of the two) with the rule set's id, version and hash in the decision
    /// and its hash as `rule_set_hash`, as stored before schema 14.
    private func decidedRows(in table: String, of subject: String) async throws -> String {
        var bindings = PostgresBindings()
        bindings.append(subject)
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT coalesce(json_agg(
                    to_jsonb(t) - 'rule_set' || jsonb_build_object(
                        'rule_set_hash', r.hash,
                        'decision', t.decision::jsonb
                            || jsonb_build_object('ruleSetID', r.id, 'ruleSetVersion', r.version, 'ruleSetHash', r.hash))
                ), '[]')::text
                FROM \(table) t LEFT JOIN rule_set r ON r.ref = t.rule_set
                WHERE t.subject = $1
                """,
            binds: bindings
        )
        for try await json in try await client.query(query, logger: logger).decode(String.self) { return json }
        return "[]"
    }

    /// Archived events with their whole event as `body` and `recorded_time` as before schema 14.
    private func archiveRows(of subject: String) async throws -> String {
        let rows = try await client.query(
            """
            SELECT subject, source, event_id, type, hc_micros(time), hc_micros(recorded_time), body::text,
                   (to_jsonb(t) - 'body' || jsonb_build_object('recorded_time', coalesce(t.recorded_time, t.time)))::text
            FROM event_archive t WHERE subject = \(subject) ORDER BY time, event_id, source
            """,
            logger: logger
        )
        var json: [String] = []
        for try await (subject, source, id, type, time, recorded, remainder, row) in rows.decode(
            (String, String, String, String, Int64, Int64?, String, String).self
        ) {
            let event = try PersonArchiveRows.event((subject, source, id, type, time, recorded, remainder))
            json.append(Self.adding("body", String(decoding: event.jsonBytes(), as: UTF8.self), to: row))
        }
        return "[" + json.joined(separator: ",") + "]"
    }

    /// The person's state in the readable layout.
    private func stateRows(of subject: String) async throws -> String {
        let rows = try await client.query(
            "SELECT (to_jsonb(t) - 'state')::text, state::text FROM person_state t WHERE subject = \(subject)",
            logger: logger
        )
        var json: [String] = []
        for try await (row, state) in rows.decode((String, String).self) {
            let readable = try PersonState(storedJSON: Array(state.utf8)).readableJSON()
            json.append(Self.adding("state", String(decoding: readable, as: UTF8.self), to: row))
        }
        return "[" + json.joined(separator: ",") + "]"
    }

    /// `object` (a JSON object with at least one member) with `"name": value` added at its end.
    private static func adding(_ name: String, _ value: String, to object: String) -> String {
        String(object.dropLast()) + ", \"" + name + "\": " + value + "}"
    }
}
