import Foundation
import Logging
import PostgresNIO

/// Applies the SQL migrations kept under `projections/migrations` in file-name order, each once,
/// each in its own transaction. Concurrent migrators (several projectors starting together)
/// serialise on an advisory lock, so every migration runs exactly once.
///
/// The advisory lock is per database, but roles are cluster-wide: two databases of one cluster
/// migrated at once (test databases, regions sharing a server) can race on creating a role or on a
/// role membership. PostgreSQL answers the loser with a unique violation on a catalog index, "role
/// already exists" (the winner committed between the loser's check and its creation) or "tuple
/// concurrently updated"; the migration's transaction is then rolled back and applied again, when it
/// sees what the winner committed.
public struct SchemaMigrator: Sendable {
    /// One migration file.
    public struct Migration: Sendable, Hashable {
        /// File name without extension, e.g. `0001_initial`; the recorded version.
        public var version: String
        /// The SQL text.
        public var sql: String

        public init(version: String, sql: String) {
            self.version = version
            self.sql = sql
        }
    }

    private let client: PostgresClient
    private let logger: Logger

    /// The advisory-lock key that serialises migrators ("HCMIGRAT" as a 64-bit number).
    private static let lockKey: Int64 = 0x4843_4D49_4752_4154

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Reads every `*.sql` file of a directory, sorted by name.
    public static func migrations(in directory: URL) throws -> [Migration] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        return try names.map { name in
            Migration(
                version: String(name.dropLast(4)),
                sql: try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            )
        }
    }

    /// Applies the migrations that the database has not recorded yet; returns the versions applied.
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [String] {
        try await client.withConnection { connection in
            // A migration may rewrite a large table and wait for running transactions: the services'
            // statement and lock timeouts (PostgresConfiguration) do not apply to it. The session's
            // settings are restored before the connection goes back to the pool.
            try await connection.query("SET statement_timeout = 0", logger: logger)
            try await connection.query("SET lock_timeout = 0", logger: logger)
            let outcome: Result<[String], any Error>
            do {
                try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
                outcome = .success(try await apply(migrations, on: connection))
            } catch {
                outcome = .failure(error)
            }
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            _ = try? await connection.query("RESET statement_timeout", logger: logger)
            _ = try? await connection.query("RESET lock_timeout", logger: logger)
            return try outcome.get()
        }
    }

    private func apply(_ migrations: [Migration], on connection: PostgresConnection) async throws -> [String] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
            """,
            logger: logger
        )
        var done = Set<String>()
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
            .decode(String.self)
        {
            done.insert(version)
        }
        var applied: [String] = []
        for migration in migrations where !done.contains(migration.version) {
            logger.info("applying migration", metadata: ["migration": "\(migration.version)"])
            var attempt = 1
            while true {
                do {
                    try await apply(migration, on: connection)
                    break
                } catch  where attempt < Self.catalogRaceAttempts && Self.isCatalogRace(error) {
                    logger.notice(
                        "migration raced another database's on a cluster-wide object; applying it again",
                        metadata: ["migration": "\(migration.version)", "attempt": "\(attempt)"]
                    )
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(50 * attempt))
                }
            }
            applied.append(migration.version)
        }
        return applied
    }

    private func apply(_ migration: Migration, on connection: PostgresConnection) async throws {
        try await connection.withTransaction(logger: logger) { transaction in
            for statement in SQLScript.statements(in: migration.sql) {
                try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            try await transaction.query(
                "INSERT INTO schema_migrations (version) VALUES (\(migration.version))",
                logger: logger
            )
        }
    }

    /// How many times a migration that lost a catalog race is tried in all.
    private static let catalogRaceAttempts = 5

    /// Whether an error is another database's concurrent change to a shared catalog (roles, memberships),
    /// which a retry resolves; any other error ends the migration.
    static func isCatalogRace(_ error: any Error) -> Bool {
        let server: PSQLError?
        if let transactionError = error as? PostgresTransactionError {
            server = transactionError.closureError as? PSQLError ?? transactionError.commitError as? PSQLError
        } else {
            server = error as? PSQLError
        }
        guard let info = server?.serverInfo else { return false }
        switch info[.sqlState] {
        case "23505": return info[.schemaName] == "pg_catalog"
        case "42710": return true  // duplicate_object: a role (or another cluster-wide object) already exists
        case "XX000": return info[.message] == "tuple concurrently updated"
        default: return false
        }
    }
}
