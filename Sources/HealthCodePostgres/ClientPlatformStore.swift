import HealthCodeCore
import Logging
import PostgresNIO

/// Table `client_platform`: the query API's registered client platforms (residents' apps, checkpoint
/// readers), each with the SHA-256 of its API key and optionally its own rate limit.
public struct ClientPlatformStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Registers a platform; `already-registered` if its id is taken (also by a removed one).
    public func add(_ platform: ClientPlatformRecord) async throws {
        let rows = try await client.query(
            """
            INSERT INTO client_platform (platform_id, kind, api_key_sha256, requests_per_second, burst_requests)
            VALUES (\(platform.id), \(platform.kind.rawValue), \(platform.apiKeySHA256),
                    \(platform.rateLimit?.requestsPerSecond), \(platform.rateLimit?.burst))
            ON CONFLICT (platform_id) DO NOTHING RETURNING platform_id
            """,
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "already-registered", context: platform.id)
    }

    /// Registers a platform, or registers it again with a new key, kind and limit (earlier keys stop
    /// working; a removed platform is active again): for the demo and benchmarks.
    public func upsert(_ platform: ClientPlatformRecord) async throws {
        try await client.query(
            """
            INSERT INTO client_platform (platform_id, kind, api_key_sha256, requests_per_second, burst_requests)
            VALUES (\(platform.id), \(platform.kind.rawValue), \(platform.apiKeySHA256),
                    \(platform.rateLimit?.requestsPerSecond), \(platform.rateLimit?.burst))
            ON CONFLICT (platform_id) DO UPDATE SET kind = excluded.kind, api_key_sha256 = excluded.api_key_sha256,
                requests_per_second = excluded.requests_per_second, burst_requests = excluded.burst_requests,
                revoked_at = NULL
            """,
            logger: logger
        )
    }

    /// Removes a platform: its key stops working within the API's refresh interval; the row stays for
    /// the audit trail.
    public func remove(_ id: String) async throws {
        let rows = try await client.query(
            """
            UPDATE client_platform SET revoked_at = now()
            WHERE platform_id = \(id) AND revoked_at IS NULL RETURNING platform_id
            """,
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "not-found", context: id)
    }

    /// Every platform, removed ones included, by id.
    public func all() async throws -> [ClientPlatformRecord] {
        let rows = try await client.query(
            """
            SELECT platform_id, kind, api_key_sha256, requests_per_second, burst_requests,
                   CASE WHEN revoked_at IS NULL THEN NULL ELSE hc_micros(revoked_at) END
            FROM client_platform ORDER BY platform_id
            """,
            logger: logger
        )
        var platforms: [ClientPlatformRecord] = []
        for try await (id, kind, hash, rate, burst, revokedAt) in rows.decode(
            (String, String, String, Double?, Int32?, Int64?).self
        ) {
            guard let kind = ClientPlatformRecord.Kind(rawValue: kind) else { continue }
            platforms.append(
                ClientPlatformRecord(
                    id: id,
                    kind: kind,
                    apiKeySHA256: hash,
                    rateLimit: rate.flatMap { rate in
                        burst.map { RequestRateLimit(requestsPerSecond: rate, burst: Int($0)) }
                    },
                    revokedAt: revokedAt.map { Instant(microsecondsSinceEpoch: $0) }
                )
            )
        }
        return platforms
    }
}
