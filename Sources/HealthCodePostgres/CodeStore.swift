import Foundation
import HealthCodeCore
import Logging
import PostgresNIO

/// Read access for the query API: a person's materialised code and state.
public struct CodeStore: Sendable {
    /// What is stored about one person.
    public struct Person: Sendable {
        public var state: PersonState
        public var eventCount: Int
        public var code: CodeDecision?
        public var evaluatedAt: Instant?
    }

    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The stored state and code of a person, or `nil` if no event of theirs was projected.
    public func person(_ subject: String) async throws -> Person? {
        let rows = try await client.query(
            """
            SELECT s.state::text, s.event_count, c.decision::text, hc_micros(c.evaluated_at)
            FROM person_state s LEFT JOIN person_code c ON c.subject = s.subject
            WHERE s.subject = \(subject)
            """,
            logger: logger
        )
        let decoder = JSONDecoder()
        for try await (state, count, decision, evaluatedAt) in rows.decode((String, Int32, String?, Int64?).self) {
            return Person(
                state: try decoder.decode(PersonState.self, from: Data(state.utf8)),
                eventCount: Int(count),
                code: try decision.map { try decoder.decode(CodeDecision.self, from: Data($0.utf8)) },
                evaluatedAt: evaluatedAt.map(Instant.init(microsecondsSinceEpoch:))
            )
        }
        return nil
    }

    /// Number of materialised codes per status.
    public func statusCounts() async throws -> [CodeStatus: Int] {
        let rows = try await client.query("SELECT status, count(*) FROM person_code GROUP BY status", logger: logger)
        var counts: [CodeStatus: Int] = [:]
        for try await (status, count) in rows.decode((String, Int64).self) {
            if let status = CodeStatus(rawValue: status) { counts[status] = Int(count) }
        }
        return counts
    }

    /// Number of archived person and area events.
    public func archivedEventCount() async throws -> Int {
        let rows = try await client.query(
            "SELECT (SELECT count(*) FROM event_archive) + (SELECT count(*) FROM area_event_archive)",
            logger: logger
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}
