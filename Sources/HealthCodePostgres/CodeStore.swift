import Foundation
import HealthCodeCore
import Logging
import PostgresNIO

/// Read access for the query API: a person's materialised code and state.
public struct CodeStore: Sendable {
    /// The folded state of one person by pseudonym, as a named prepared statement: the read behind
    /// every code that is evaluated rather than answered from its materialisation.
    struct StateQuery: PostgresPreparedStatement {
        static let sql = "SELECT state::text FROM person_state WHERE subject = $1"
        typealias Row = ByteBuffer

        var subject: String

        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(subject)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(ByteBuffer.self)
        }
    }

    /// A person's materialised code as stored; the decision is read from its JSON by whoever needs it.
    public struct StoredCode: Sendable {
        /// The stored JSON of the decision (``CodeDecision/init(storedJSON:ruleSet:)``).
        public var storedDecision: ByteBuffer
        /// The rule set that decided, which the stored row references.
        public var ruleSet: RuleSetIdentity
        public var evaluatedAt: Instant

        public init(storedDecision: ByteBuffer, ruleSet: RuleSetIdentity, evaluatedAt: Instant) {
            self.storedDecision = storedDecision
            self.ruleSet = ruleSet
            self.evaluatedAt = evaluatedAt
        }

        public func decision() throws(StoredJSONError) -> CodeDecision {
            try CodeDecision(storedJSON: storedDecision.readableBytesView, ruleSet: ruleSet)
        }
    }

    /// The materialised codes of several people by pseudonym, as a named prepared statement.
    struct CodesQuery: PostgresPreparedStatement {
        static let sql = """
            SELECT c.subject, c.decision::text, hc_micros(c.evaluated_at), r.id, r.version, r.hash
            FROM person_code c JOIN rule_set r ON r.ref = c.rule_set WHERE c.subject = ANY($1)
            """
        typealias Row = (String, ByteBuffer, Int64, String, String, String)

        var subjects: [String]

        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(subjects)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(Row.self)
        }
    }

    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The folded state of a person, or `nil` if no event of theirs was projected.
    public func state(of subject: String) async throws -> PersonState? {
        for try await state in try await client.execute(StateQuery(subject: subject), logger: logger) {
            return try PersonState(storedJSON: state.readableBytesView)
        }
        return nil
    }

    /// The materialised codes of `subjects` in one round trip; people without a code are absent.
    public func codes(of subjects: [String]) async throws -> [String: StoredCode] {
        var codes: [String: StoredCode] = [:]
        codes.reserveCapacity(subjects.count)
        for try await (subject, decision, evaluatedAt, id, version, hash) in try await client.execute(
            CodesQuery(subjects: subjects),
            logger: logger
        ) {
            codes[subject] = StoredCode(
                storedDecision: decision,
                ruleSet: RuleSetIdentity(id: id, version: version, hash: hash),
                evaluatedAt: Instant(microsecondsSinceEpoch: evaluatedAt)
            )
        }
        return codes
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
