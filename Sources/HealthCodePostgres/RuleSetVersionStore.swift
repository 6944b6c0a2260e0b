import HealthCodeCore
import Logging
import PostgresNIO

/// One activation of a rule set: from `effectiveFrom` on it decides, until a later activation takes effect.
public struct RuleSetActivation: Sendable, Hashable {
    public var activationID: Int64
    public var ruleSet: RuleSetIdentity
    public var effectiveFrom: Instant
    /// Who activated it (the operator's name, as given).
    public var activatedBy: String
    public var activatedAt: Instant
    /// The PostgreSQL role that recorded it.
    public var databaseRole: String
}

/// Rule sets as audited versions (migration 0015): each rule set's file kept by hash, and every activation,
/// insert-only. The version in force at an instant is the activation with the latest `effectiveFrom` at or
/// before it (the later activation on a tie).
public struct RuleSetVersionStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Stores `body` (a rule set file; refused with the field that is wrong unless it decodes) and activates
    /// it from `effectiveFrom`, in one transaction; returns the activation.
    public func activate(
        body: [UInt8],
        effectiveFrom: Instant,
        activatedBy: String
    ) async throws -> RuleSetActivation {
        let ruleSet = try RuleSet.decode(body)
        let id = try await client.withTransaction(logger: logger) { transaction in
            try await Self.activate(
                body,
                ruleSet,
                effectiveFrom: effectiveFrom,
                by: activatedBy,
                on: transaction,
                logger
            )
        }
        guard let activation = try await activations().first(where: { $0.activationID == id }) else {
            throw RuleSetRegistrationError()
        }
        return activation
    }

    /// Stores a rule set's file and records its activation on `connection` (in the caller's transaction);
    /// returns the activation's id.
    static func activate(
        _ body: [UInt8],
        _ ruleSet: RuleSet,
        effectiveFrom: Instant,
        by activatedBy: String,
        on connection: PostgresConnection,
        _ logger: Logger
    ) async throws -> Int64 {
        let identity = ruleSet.identity
        try await store(body, ruleSet, on: connection, logger)
        let rows = try await connection.query(
            """
            INSERT INTO rule_set_activation (rule_set, effective_from, activated_by)
            SELECT ref, hc_instant(\(effectiveFrom.microsecondsSinceEpoch)), \(activatedBy)
            FROM rule_set WHERE hash = \(identity.hash)
            RETURNING activation_id
            """,
            logger: logger
        )
        for try await id in rows.decode(Int64.self) { return id }
        throw RuleSetRegistrationError()
    }

    /// Stores a rule set's file by its hash, without activating it (a change held for approval names it), on
    /// `connection`. A rule set a projector registered before 0015 has no body yet: it gets this one (same hash).
    static func store(
        _ body: [UInt8],
        _ ruleSet: RuleSet,
        on connection: PostgresConnection,
        _ logger: Logger
    )
        async throws
    {
        let identity = ruleSet.identity
        try await connection.query(
            """
            INSERT INTO rule_set (id, version, hash, body)
            VALUES (\(identity.id), \(identity.version), \(identity.hash), \(String(decoding: body, as: UTF8.self)))
            ON CONFLICT (hash) DO UPDATE SET body = excluded.body WHERE rule_set.body IS NULL
            """,
            logger: logger
        )
    }

    /// Every activation, oldest first.
    public func activations() async throws -> [RuleSetActivation] {
        let rows = try await client.query(
            """
            SELECT a.activation_id, r.id, r.version, r.hash, hc_micros(a.effective_from), a.activated_by,
                   hc_micros(a.activated_at), a.db_role
            FROM rule_set_activation a JOIN rule_set r ON r.ref = a.rule_set
            ORDER BY a.activation_id
            """,
            logger: logger
        )
        var activations: [RuleSetActivation] = []
        for try await (activationID, id, version, hash, effective, by, at, role) in rows.decode(
            (Int64, String, String, String, Int64, String, Int64, String).self
        ) {
            activations.append(
                RuleSetActivation(
                    activationID: activationID,
                    ruleSet: RuleSetIdentity(id: id, version: version, hash: hash),
                    effectiveFrom: Instant(microsecondsSinceEpoch: effective),
                    activatedBy: by,
                    activatedAt: Instant(microsecondsSinceEpoch: at),
                    databaseRole: role
                )
            )
        }
        return activations
    }

    /// The activation in force at `instant`; `nil` before the first.
    public func activation(at instant: Instant) async throws -> RuleSetActivation? {
        try await activations().filter { $0.effectiveFrom <= instant }
            .max { ($0.effectiveFrom, $0.activationID) < ($1.effectiveFrom, $1.activationID) }
    }

    /// The file of the rule set with `hash`, byte for byte as activated; `nil` if unknown or never stored.
    public func body(ofHash hash: String) async throws -> [UInt8]? {
        let rows = try await client.query("SELECT body FROM rule_set WHERE hash = \(hash)", logger: logger)
        for try await body in rows.decode(String?.self) { return body.map { Array($0.utf8) } }
        return nil
    }

    /// Activations recorded after `activation`, in order, each with its rule set's file (activations of a
    /// rule set whose file was never stored are left out: nothing to evaluate with).
    public func activations(
        after activation: Int64
    ) async throws
        -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]
    {
        try await Self.decodeActivations(client.query(Self.activationsQuery(after: activation), logger: logger))
    }

    static func activationsQuery(after activation: Int64) -> PostgresQuery {
        """
        SELECT a.activation_id, hc_micros(a.effective_from), r.body
        FROM rule_set_activation a JOIN rule_set r ON r.ref = a.rule_set
        WHERE a.activation_id > \(activation) AND r.body IS NOT NULL
        ORDER BY a.activation_id
        """
    }

    static func decodeActivations(
        _ rows: PostgresRowSequence
    ) async throws -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])] {
        var activations: [(activation: Int64, effectiveFrom: Instant, body: [UInt8])] = []
        for try await (id, effective, body) in rows.decode((Int64, Int64, String).self) {
            activations.append((id, Instant(microsecondsSinceEpoch: effective), Array(body.utf8)))
        }
        return activations
    }
}

extension RuleSetVersionStore: RuleSetActivations {}
