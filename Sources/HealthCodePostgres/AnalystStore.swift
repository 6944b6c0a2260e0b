import Foundation
import HealthCodeCore
import Logging
import PostgresNIO

/// One read as recorded in the insert-only table `analyst_audit`: by an analyst or by a checkpoint
/// platform (exactly one of the two).
public struct AuditEntry: Sendable, Hashable, Codable {
    /// The analyst who read; `nil` for a platform's read.
    public var analyst: String?
    /// The checkpoint platform that read; `nil` for an analyst's read.
    public var platform: String?
    public var purpose: String
    /// The pseudonym read about.
    public var subject: String
    /// The endpoint, e.g. `code`, `explain` or `export`.
    public var endpoint: String
    public var readAt: Instant

    public init(
        analyst: String?,
        platform: String? = nil,
        purpose: String,
        subject: String,
        endpoint: String,
        readAt: Instant
    ) {
        self.analyst = analyst
        self.platform = platform
        self.purpose = purpose
        self.subject = subject
        self.endpoint = endpoint
        self.readAt = readAt
    }
}

/// Tables `analyst_credential` and `analyst_audit`: who may read explanations and exports, and
/// the record of every such read.
public struct AnalystStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Registers an analyst with the SHA-256 (hex) of its API key; `mayApprove`: it may approve or reject held
    /// changes in the console.
    public func add(id: String, apiKeySHA256 hash: String, mayApprove: Bool = false) async throws {
        let rows = try await client.query(
            """
            INSERT INTO analyst_credential (analyst_id, api_key_sha256, may_approve)
            VALUES (\(id), \(hash), \(mayApprove))
            ON CONFLICT (analyst_id) DO NOTHING RETURNING analyst_id
            """,
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "already-registered", context: id)
    }

    /// Registers an analyst, or gives an existing one this key (active again) and right to approve: for a local
    /// demo analyst registered anew at every start.
    public func replace(id: String, apiKeySHA256 hash: String, mayApprove: Bool) async throws {
        try await client.query(
            """
            INSERT INTO analyst_credential (analyst_id, api_key_sha256, may_approve)
            VALUES (\(id), \(hash), \(mayApprove))
            ON CONFLICT (analyst_id) DO UPDATE
                SET api_key_sha256 = excluded.api_key_sha256, may_approve = excluded.may_approve, revoked_at = NULL
            """,
            logger: logger
        )
    }

    /// Allows or forbids an analyst to approve or reject held changes in the console.
    public func setMayApprove(_ id: String, _ mayApprove: Bool) async throws {
        let rows = try await client.query(
            "UPDATE analyst_credential SET may_approve = \(mayApprove) WHERE analyst_id = \(id) RETURNING analyst_id",
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "not-found", context: id)
    }

    /// Whether an active analyst may approve or reject held changes.
    public func mayApprove(_ id: String) async throws -> Bool {
        let rows = try await client.query(
            "SELECT may_approve FROM analyst_credential WHERE analyst_id = \(id) AND revoked_at IS NULL",
            logger: logger
        )
        for try await value in rows.decode(Bool.self) { return value }
        return false
    }

    /// Revokes an analyst's credential.
    public func revoke(_ id: String) async throws {
        let rows = try await client.query(
            """
            UPDATE analyst_credential SET revoked_at = now()
            WHERE analyst_id = \(id) AND revoked_at IS NULL RETURNING analyst_id
            """,
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "not-found", context: id)
    }

    /// Every analyst id with whether it is revoked.
    public func all() async throws -> [(id: String, revoked: Bool)] {
        let rows = try await client.query(
            "SELECT analyst_id, revoked_at IS NOT NULL FROM analyst_credential ORDER BY analyst_id",
            logger: logger
        )
        var analysts: [(id: String, revoked: Bool)] = []
        for try await (id, revoked) in rows.decode((String, Bool).self) { analysts.append((id, revoked)) }
        return analysts
    }

    /// The active analyst whose API key has this SHA-256 (hex), if any.
    public func analyst(apiKeySHA256 hash: String) async throws -> String? {
        let rows = try await client.query(
            "SELECT analyst_id FROM analyst_credential WHERE api_key_sha256 = \(hash) AND revoked_at IS NULL",
            logger: logger
        )
        for try await id in rows.decode(String.self) { return id }
        return nil
    }

    /// Appends one read to the audit table: by `analyst` or by `platform` (exactly one).
    public func record(
        analyst: String?,
        platform: String? = nil,
        purpose: String,
        subject: String,
        endpoint: String
    ) async throws {
        try await client.query(
            """
            INSERT INTO analyst_audit (subject, analyst_id, platform_id, purpose, endpoint)
            VALUES (\(subject), \(analyst), \(platform), \(purpose), \(endpoint))
            """,
            logger: logger
        )
    }

    /// Appends reads to the audit table in one statement (``AuditBatches``).
    public func record(_ records: [AuditRecord]) async throws {
        // Arrays of text cannot hold NULL here: an absent reader travels as '' (ids are never empty).
        try await client.query(
            """
            INSERT INTO analyst_audit (subject, analyst_id, platform_id, purpose, endpoint)
            SELECT subject, NULLIF(analyst_id, ''), NULLIF(platform_id, ''), purpose, endpoint
            FROM unnest(\(records.map(\.subject))::text[], \(records.map { $0.analyst ?? "" })::text[],
                        \(records.map { $0.platform ?? "" })::text[], \(records.map(\.purpose))::text[],
                        \(records.map(\.endpoint))::text[])
                AS r(subject, analyst_id, platform_id, purpose, endpoint)
            """,
            logger: logger
        )
    }

    /// The most recent reads, newest first, optionally of one subject, one analyst or one platform.
    public func entries(
        subject: String?,
        analyst: String?,
        platform: String? = nil,
        limit: Int
    ) async throws -> [AuditEntry] {
        let rows = try await client.query(
            """
            SELECT analyst_id, platform_id, purpose, subject, endpoint, hc_micros(read_at) FROM analyst_audit
            WHERE (\(subject)::text IS NULL OR subject = \(subject))
              AND (\(analyst)::text IS NULL OR analyst_id = \(analyst))
              AND (\(platform)::text IS NULL OR platform_id = \(platform))
            ORDER BY read_at DESC, audit_id DESC LIMIT \(limit)
            """,
            logger: logger
        )
        var entries: [AuditEntry] = []
        for try await (analyst, platform, purpose, subject, endpoint, readAt) in rows.decode(
            (String?, String?, String, String, String, Int64).self
        ) {
            entries.append(
                AuditEntry(
                    analyst: analyst,
                    platform: platform,
                    purpose: purpose,
                    subject: subject,
                    endpoint: endpoint,
                    readAt: Instant(microsecondsSinceEpoch: readAt)
                )
            )
        }
        return entries
    }
}
