import HealthCodeCore
import Logging
import PostgresNIO

/// A change held for a second operator (migration 0017): a rule-set activation or a designation that would
/// turn more than the configured number of people red.
public struct HeldChange: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case ruleSet = "rule-set"
        case designation
    }

    public enum Status: String, Sendable, Hashable {
        case held, approved, rejected
    }

    public var id: Int64
    public var kind: Kind
    /// The rule set's file, or the designation event, byte for byte as proposed.
    public var body: [UInt8]
    /// A rule set: when it is to take effect.
    public var effectiveFrom: Instant?
    /// People who would turn red, and the number over which a change is held.
    public var turningRed: Int
    public var threshold: Int
    /// The impact report (``ImpactReport/jsonBytes()``).
    public var impact: String
    public var requestedBy: String
    public var requestedAt: Instant
    public var status: Status
    public var decidedBy: String?
    public var decidedAt: Instant?
    /// A designation: when it was appended to the event log.
    public var publishedAt: Instant?
}

/// Why a held change could not be decided: `code` is `unknown`, `decided` or `same-operator`.
public struct HeldChangeRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var heldID: Int64
    public var description: String {
        switch code {
        case "unknown": "no held change #\(heldID)"
        case "decided": "held change #\(heldID) is already decided"
        default: "held change #\(heldID) must be decided by another operator than the one who asked for it"
        }
    }
}

/// Changes held for a second operator, and their decisions (``HeldChange``). Approving a held rule set
/// activates it in the same transaction; an approved designation is appended to the event log afterwards
/// (``unpublishedDesignations()``, ``markPublished(_:)``).
public struct HeldChangeStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Holds a change with the impact report that held it; returns its id. A rule set's file is stored by its
    /// hash at once (not activated): its approval activates what is stored (`hc_decide_held_change`, 0019).
    public func hold(
        _ kind: HeldChange.Kind,
        body: [UInt8],
        effectiveFrom: Instant?,
        impact: ImpactReport,
        threshold: Int,
        requestedBy: String
    ) async throws -> Int64 {
        try await client.withTransaction(logger: logger) { transaction in
            if kind == .ruleSet {
                try await RuleSetVersionStore.store(body, try RuleSet.decode(body), on: transaction, logger)
            }
            let rows = try await transaction.query(
                """
                INSERT INTO held_change (kind, body, effective_from, turning_red, threshold, impact, requested_by)
                VALUES (\(kind.rawValue), \(String(decoding: body, as: UTF8.self)),
                        hc_instant(\(effectiveFrom?.microsecondsSinceEpoch)), \(impact.turningRed), \(threshold),
                        \(String(decoding: impact.jsonBytes(), as: UTF8.self))::json, \(requestedBy))
                RETURNING held_id
                """,
                logger: logger
            )
            for try await id in rows.decode(Int64.self) { return id }
            throw HeldChangeRefusal(code: "unknown", heldID: 0)
        }
    }

    /// Held change `id`, whatever its status; `nil` if there is none.
    public func change(_ id: Int64) async throws -> HeldChange? {
        try await Self.changes(client.query(Self.select(id: id), logger: logger)).first
    }

    /// Held changes, oldest first; decided ones too with `includeDecided`.
    public func changes(includeDecided: Bool) async throws -> [HeldChange] {
        try await Self.changes(
            client.query(Self.select(where: includeDecided ? "true" : "status = 'held'"), logger: logger)
        )
    }

    /// Approves or rejects held change `id` as `operator`, who must not be the one who asked for it. Approving
    /// a rule set activates it in the same transaction (recorded as activated by the requester, approved by
    /// `operator`); returns the change as decided.
    /// - Throws: ``HeldChangeRefusal``.
    public func decide(_ id: Int64, approve: Bool, by operatorName: String) async throws -> HeldChange {
        // A refusal is the answer, not a database failure: rethrown as it is.
        try await client.withTransactionRethrowing(logger: logger) { transaction in
            guard let change = try await Self.changes(transaction.query(Self.select(id: id), logger: logger)).first
            else { throw HeldChangeRefusal(code: "unknown", heldID: id) }
            // A rule set held before 0019 has no stored file: a role that may store rule sets (the operators')
            // stores it now; the API's role may not, and its approval is refused by the database instead.
            if approve, change.kind == .ruleSet, try await Self.mayStoreRuleSets(on: transaction, logger) {
                try await RuleSetVersionStore.store(
                    change.body,
                    try RuleSet.decode(change.body),
                    on: transaction,
                    logger
                )
            }
            // The decision and an approved rule set's activation, by the database's own function: the only way
            // to either for the API's role, with the second-operator rule checked under the row's lock.
            let outcome = try await transaction.query(
                "SELECT hc_decide_held_change(\(id), \(approve), \(operatorName))",
                logger: logger
            ).decode(String.self).first { _ in true }
            switch outcome {
            case "decided": break
            case "already-decided": throw HeldChangeRefusal(code: "decided", heldID: id)
            case "same-operator": throw HeldChangeRefusal(code: "same-operator", heldID: id)
            default: throw HeldChangeRefusal(code: "unknown", heldID: id)
            }
            let decided = try await transaction.query(Self.select(id: id), logger: logger)
            guard let result = try await Self.changes(decided).first else {
                throw HeldChangeRefusal(code: "unknown", heldID: id)
            }
            return result
        }
    }

    private static func mayStoreRuleSets(on connection: PostgresConnection, _ logger: Logger) async throws -> Bool {
        try await connection.query("SELECT has_table_privilege('rule_set', 'INSERT')", logger: logger)
            .decode(Bool.self).first { _ in true } ?? false
    }

    /// Approved designations not yet appended to the event log, oldest first.
    public func unpublishedDesignations() async throws -> [HeldChange] {
        try await Self.changes(
            client.query(
                Self.select(where: "kind = 'designation' AND status = 'approved' AND published_at IS NULL"),
                logger: logger
            )
        )
    }

    /// Records that approved designations were appended to the event log.
    public func markPublished(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await client.query(
            "UPDATE held_change SET published_at = now() WHERE held_id = ANY(\(ids)) AND published_at IS NULL",
            logger: logger
        )
    }

    private static let columns = """
        SELECT held_id, kind, body, hc_micros(effective_from), turning_red, threshold, impact::text, requested_by,
               hc_micros(requested_at), status, decided_by, hc_micros(decided_at), hc_micros(published_at)
        FROM held_change
        """

    private static func select(where condition: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: columns + " WHERE " + condition + " ORDER BY held_id")
    }

    private static func select(id: Int64) -> PostgresQuery {
        var query = PostgresQuery(unsafeSQL: columns + " WHERE held_id = $1")
        query.binds.append(id)
        return query
    }

    private static func changes(_ rows: PostgresRowSequence) async throws -> [HeldChange] {
        var changes: [HeldChange] = []
        for try await row in rows.decode(
            (Int64, String, String, Int64?, Int32, Int32, String, String, Int64, String, String?, Int64?, Int64?).self
        ) {
            changes.append(
                HeldChange(
                    id: row.0,
                    kind: HeldChange.Kind(rawValue: row.1) ?? .designation,
                    body: Array(row.2.utf8),
                    effectiveFrom: row.3.map(Instant.init(microsecondsSinceEpoch:)),
                    turningRed: Int(row.4),
                    threshold: Int(row.5),
                    impact: row.6,
                    requestedBy: row.7,
                    requestedAt: Instant(microsecondsSinceEpoch: row.8),
                    status: HeldChange.Status(rawValue: row.9) ?? .held,
                    decidedBy: row.10,
                    decidedAt: row.11.map(Instant.init(microsecondsSinceEpoch:)),
                    publishedAt: row.12.map(Instant.init(microsecondsSinceEpoch:))
                )
            )
        }
        return changes
    }
}
