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

    /// The person's archived events, by `time`, then `id`.
    public func events(of subject: String) async throws -> [ArchivedPersonEvent] {
        try await events(of: subject, cutoff: nil)
    }

    /// The person's archived events that can still matter to evaluations at `cutoff` or later, by `time`,
    /// then `id`: all but the exposures, declarations and journeys (by their arrival) before `cutoff`. Their
    /// bodies are neither sent nor parsed.
    public func events(of subject: String, relevantFrom cutoff: Instant) async throws -> [ArchivedPersonEvent] {
        try await events(of: subject, cutoff: cutoff)
    }

    private func events(of subject: String, cutoff: Instant?) async throws -> [ArchivedPersonEvent] {
        let rows = try await client.query(PersonArchiveRows.query(of: [subject], relevantFrom: cutoff), logger: logger)
        return try await PersonArchiveRows.events(rows)[subject, default: []].map(ArchivedPersonEvent.init)
    }

    /// Every row about `subject` in every table keyed by person (each table with a `subject`
    /// column), as a JSON array per table name. Tables added by later migrations are included
    /// without change here, so an export never misses what is held.
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
            let quoted = "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            var bindings = PostgresBindings()
            bindings.append(subject)
            let query = PostgresQuery(
                unsafeSQL: "SELECT coalesce(json_agg(to_jsonb(t)), '[]')::text FROM \(quoted) t WHERE subject = $1",
                binds: bindings
            )
            for try await json in try await client.query(query, logger: logger).decode(String.self) {
                export.append((name, json))
            }
        }
        return export
    }
}
