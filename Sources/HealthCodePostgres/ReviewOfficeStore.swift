import HealthCodeCore
import Logging
import PostgresNIO

/// Tables `review_officer`, `review_override_count`, `held_review` and `review_audit`: who may decide
/// overrides for a review office, the hourly quotas shared by every gateway, the overrides held over a
/// quota and every decision about them.
public struct ReviewOfficeStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Runs `body` in one transaction; what `body` throws (a ``RegistryError`` stays one) is rethrown.
    private func transaction<Result: Sendable>(
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await client.withTransactionRethrowing(logger: logger, body)
    }

    // MARK: Officers

    /// Registers `officer` under `office` (a registered publisher), or registers it again after its
    /// removal; throws ``RegistryError`` `unknown-office` or `already-registered`.
    public func addOfficer(_ officer: String, office: String) async throws {
        try await transaction { connection in
            let offices = try await connection.query(
                "SELECT 1 FROM publisher WHERE publisher_id = \(office)",
                logger: logger
            )
            var known = false
            for try await _ in offices.decode(Int32.self) { known = true }
            guard known else { throw RegistryError(code: "unknown-office", context: office) }
            let rows = try await connection.query(
                """
                INSERT INTO review_officer (office_id, officer_id) VALUES (\(office), \(officer))
                ON CONFLICT (office_id, officer_id) DO UPDATE SET registered_at = now(), removed_at = NULL
                    WHERE review_officer.removed_at IS NOT NULL
                RETURNING officer_id
                """,
                logger: logger
            )
            var added = false
            for try await _ in rows.decode(String.self) { added = true }
            guard added else { throw RegistryError(code: "already-registered", context: officer) }
            try await connection.query(
                """
                INSERT INTO review_audit (office_id, action, officer_id)
                VALUES (\(office), 'officer-added', \(officer))
                """,
                logger: logger
            )
        }
    }

    /// Removes `officer` from `office`; throws ``RegistryError`` `not-found` if it is not registered there.
    public func removeOfficer(_ officer: String, office: String) async throws {
        try await transaction { connection in
            let rows = try await connection.query(
                """
                UPDATE review_officer SET removed_at = now()
                WHERE office_id = \(office) AND officer_id = \(officer) AND removed_at IS NULL
                RETURNING officer_id
                """,
                logger: logger
            )
            var removed = false
            for try await _ in rows.decode(String.self) { removed = true }
            guard removed else { throw RegistryError(code: "not-found", context: officer) }
            try await connection.query(
                """
                INSERT INTO review_audit (office_id, action, officer_id)
                VALUES (\(office), 'officer-removed', \(officer))
                """,
                logger: logger
            )
        }
    }

    /// The officers registered now, by office (all offices, or only `office`), ordered.
    public func officers(office: String? = nil) async throws -> [(office: String, officer: String)] {
        let rows = try await client.query(
            """
            SELECT office_id, officer_id FROM review_officer
            WHERE removed_at IS NULL AND (\(office)::text IS NULL OR office_id = \(office))
            ORDER BY office_id, officer_id
            """,
            logger: logger
        )
        var officers: [(office: String, officer: String)] = []
        for try await (office, officer) in rows.decode((String, String).self) { officers.append((office, officer)) }
        return officers
    }

    // MARK: Quotas

    /// Decides each of `office`'s overrides in order (see ``OverrideQuota/admit(_:applied:)``) against
    /// what the office applied in the clock hour `window`, in one transaction that every gateway
    /// serialises on the office: counts the applied ones and stores the held ones. An override already
    /// held (sent again) is answered held with its id and counted once.
    public func admit(
        _ overrides: [PendingOverride],
        office: String,
        window: Instant,
        quota: OverrideQuota
    ) async throws -> [OverrideAdmission] {
        guard !overrides.isEmpty else { return [] }
        let hour = window.microsecondsSinceEpoch
        return try await transaction { connection in
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtextextended('hc:review-office:' || \(office), 0))",
                logger: logger
            )
            var registered = Set<String>()
            let officers = try await connection.query(
                "SELECT officer_id FROM review_officer WHERE office_id = \(office) AND removed_at IS NULL",
                logger: logger
            )
            for try await officer in officers.decode(String.self) { registered.insert(officer) }
            var heldBefore: [String: Int64] = [:]
            let ids = overrides.map(\.eventID)
            let held = try await connection.query(
                "SELECT event_id, held_id FROM held_review WHERE source = \(office) AND event_id = ANY(\(ids))",
                logger: logger
            )
            for try await (id, heldID) in held.decode((String, Int64).self) { heldBefore[id] = heldID }
            var counts = OverrideCounts()
            let applied = try await connection.query(
                """
                SELECT officer_id, applied FROM review_override_count
                WHERE office_id = \(office) AND hour = hc_instant(\(hour))
                """,
                logger: logger
            )
            for try await (officer, count) in applied.decode((String, Int32).self) {
                counts.byOfficer[officer] = Int(count)
            }
            var admissions = [OverrideAdmission?](repeating: nil, count: overrides.count)
            var quotaIndices: [Int] = []
            for (index, override) in overrides.enumerated() {
                if !registered.contains(override.officer) {
                    admissions[index] = .unregisteredOfficer
                } else if let heldID = heldBefore[override.eventID] {
                    admissions[index] = .held(id: heldID)
                } else {
                    quotaIndices.append(index)
                }
            }
            let (applies, after) = quota.admit(quotaIndices.map { overrides[$0].officer }, applied: counts)
            var toHold: [PendingOverride] = []
            for (index, fits) in zip(quotaIndices, applies) {
                if fits { admissions[index] = .applied } else { toHold.append(overrides[index]) }
            }
            let changed = after.byOfficer.filter { counts.byOfficer[$0.key] != $0.value }
            if !changed.isEmpty {
                let officers = Array(changed.keys)
                let totals = officers.map { Int32(changed[$0]!) }
                try await connection.query(
                    """
                    INSERT INTO review_override_count (office_id, officer_id, hour, applied)
                    SELECT \(office), o, hc_instant(\(hour)), n FROM unnest(\(officers)::text[], \(totals)::integer[]) AS u(o, n)
                    ON CONFLICT (office_id, hour, officer_id) DO UPDATE SET applied = excluded.applied
                    """,
                    logger: logger
                )
            }
            if !toHold.isEmpty {
                let rows = try await connection.query(
                    """
                    INSERT INTO held_review (source, event_id, officer_id, subject, event)
                    SELECT \(office), i, o, s, e
                    FROM unnest(\(toHold.map(\.eventID))::text[], \(toHold.map(\.officer))::text[],
                        \(toHold.map(\.subject))::text[], \(toHold.map { String(decoding: $0.event, as: UTF8.self) })::text[])
                        AS u(i, o, s, e)
                    RETURNING event_id, held_id
                    """,
                    logger: logger
                )
                var heldIDs: [String: Int64] = [:]
                for try await (id, heldID) in rows.decode((String, Int64).self) { heldIDs[id] = heldID }
                for (index, override) in overrides.enumerated() where admissions[index] == nil {
                    admissions[index] = .held(id: heldIDs[override.eventID] ?? 0)
                }
            }
            return admissions.map { $0! }
        }
    }

    /// Deletes the counts of hours that ended more than a day ago.
    public func forgetOldCounts() async throws {
        try await client.query(
            "DELETE FROM review_override_count WHERE hour < now() - interval '25 hours'",
            logger: logger
        )
    }

    // MARK: Held overrides

    /// Held overrides (still waiting, or all of them with `all`), of one office or of all, oldest first.
    public func held(office: String? = nil, all: Bool = false, limit: Int = 1000) async throws -> [HeldReview] {
        try await decodeHeld(
            client.query(
                """
                SELECT held_id, source, officer_id, event_id, subject, status, hc_micros(held_at), decided_by,
                    hc_micros(decided_at), hc_micros(published_at), event
                FROM held_review
                WHERE (\(all) OR status = 'held') AND (\(office)::text IS NULL OR source = \(office))
                ORDER BY held_id LIMIT \(Int64(limit))
                """,
                logger: logger
            )
        )
    }

    /// How many overrides wait for a second officer.
    public func heldCount() async throws -> Int {
        let rows = try await client.query("SELECT count(*) FROM held_review WHERE status = 'held'", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Approves or rejects held overrides as `officer`, each one only if the second-officer rule allows
    /// (``HeldReview/refusal(toDecideBy:registered:)``), and audits each decision; all in one
    /// transaction. Returns the refusal of each id that was not decided.
    public func decide(
        _ ids: [Int64],
        approve: Bool,
        officer: String
    ) async throws -> [Int64: HeldReviewRefusal] {
        try await transaction { connection in
            let rows = try await connection.query(
                """
                SELECT held_id, source, officer_id, event_id, subject, status, hc_micros(held_at), decided_by,
                    hc_micros(decided_at), hc_micros(published_at), event
                FROM held_review WHERE held_id = ANY(\(ids)) ORDER BY held_id FOR UPDATE
                """,
                logger: logger
            )
            let held = try await decodeHeld(rows)
            var registered: [String: Set<String>] = [:]
            let officers = try await connection.query(
                """
                SELECT office_id, officer_id FROM review_officer
                WHERE officer_id = \(officer) AND removed_at IS NULL
                """,
                logger: logger
            )
            for try await (office, id) in officers.decode((String, String).self) {
                registered[office, default: []].insert(id)
            }
            var refusals: [Int64: HeldReviewRefusal] = [:]
            for id in ids where !held.contains(where: { $0.id == id }) { refusals[id] = .notHeld }
            let status = approve ? "approved" : "rejected"
            for review in held {
                if let refusal = review.refusal(toDecideBy: officer, registered: registered[review.office] ?? []) {
                    refusals[review.id] = refusal
                    continue
                }
                try await connection.query(
                    """
                    UPDATE held_review SET status = \(status), decided_by = \(officer), decided_at = now()
                    WHERE held_id = \(review.id)
                    """,
                    logger: logger
                )
                try await connection.query(
                    """
                    INSERT INTO review_audit (office_id, action, officer_id, held_id, held_officer_id)
                    VALUES (\(review.office), \(status), \(officer), \(review.id), \(review.officer))
                    """,
                    logger: logger
                )
            }
            return refusals
        }
    }

    /// Approved overrides not yet appended to the log, oldest first.
    public func unpublished(limit: Int = 1000) async throws -> [HeldReview] {
        try await decodeHeld(
            client.query(
                """
                SELECT held_id, source, officer_id, event_id, subject, status, hc_micros(held_at), decided_by,
                    hc_micros(decided_at), hc_micros(published_at), event
                FROM held_review WHERE status = 'approved' AND published_at IS NULL
                ORDER BY held_id LIMIT \(Int64(limit))
                """,
                logger: logger
            )
        )
    }

    /// Records that these approved overrides are in the log.
    public func markPublished(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await client.query(
            """
            UPDATE held_review SET published_at = now()
            WHERE held_id = ANY(\(ids)) AND status = 'approved' AND published_at IS NULL
            """,
            logger: logger
        )
    }

    /// Decisions on held overrides audited after `auditID`, oldest first: (audit id, office, the officer
    /// who made the override, `approved` or `rejected`).
    public func auditedDecisions(after auditID: Int64) async throws -> [AuditedDecision] {
        let rows = try await client.query(
            """
            SELECT audit_id, office_id, held_officer_id, action FROM review_audit
            WHERE audit_id > \(auditID) AND action IN ('approved', 'rejected') ORDER BY audit_id LIMIT 10000
            """,
            logger: logger
        )
        var decisions: [AuditedDecision] = []
        for try await (id, office, officer, decision) in rows.decode((Int64, String, String, String).self) {
            decisions.append((id, office, officer, decision))
        }
        return decisions
    }

    /// An audited decision: its audit id, the office, the officer who made the override, `approved` or
    /// `rejected`.
    public typealias AuditedDecision = (auditID: Int64, office: String, officer: String, decision: String)

    /// The latest audit id (0 when there is none).
    public func latestAuditID() async throws -> Int64 {
        let rows = try await client.query("SELECT coalesce(max(audit_id), 0) FROM review_audit", logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        return 0
    }

    private func decodeHeld(_ rows: PostgresRowSequence) async throws -> [HeldReview] {
        var held: [HeldReview] = []
        for try await (id, office, officer, eventID, subject, status, heldAt, decidedBy, decidedAt, publishedAt, event)
            in rows.decode(
                (Int64, String, String, String, String, String, Int64, String?, Int64?, Int64?, String).self
            )
        {
            held.append(
                HeldReview(
                    id: id,
                    office: office,
                    officer: officer,
                    eventID: eventID,
                    subject: subject,
                    status: HeldReview.Status(rawValue: status) ?? .held,
                    heldAt: Instant(microsecondsSinceEpoch: heldAt),
                    decidedBy: decidedBy,
                    decidedAt: decidedAt.map(Instant.init(microsecondsSinceEpoch:)),
                    publishedAt: publishedAt.map(Instant.init(microsecondsSinceEpoch:)),
                    event: Array(event.utf8)
                )
            )
        }
        return held
    }
}

/// Table `client_assertion_use`: the `jti` of every client assertion used, until it expires.
public struct AssertionUseStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Records that `issuer` used `jti` until `expiresAt`; `false` if it was used before (a replay).
    public func recordFirstUse(issuer: String, jti: String, expiresAt: Instant) async throws -> Bool {
        let rows = try await client.query(
            """
            INSERT INTO client_assertion_use (issuer, jti, expires_at)
            VALUES (\(issuer), \(jti), hc_instant(\(expiresAt.microsecondsSinceEpoch)))
            ON CONFLICT (issuer, jti) DO NOTHING RETURNING 1
            """,
            logger: logger
        )
        for try await _ in rows.decode(Int32.self) { return true }
        return false
    }

    /// Deletes the uses of assertions that expired: they can no longer be replayed.
    public func forgetExpired() async throws {
        try await client.query("DELETE FROM client_assertion_use WHERE expires_at < now()", logger: logger)
    }
}
