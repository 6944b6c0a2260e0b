import Foundation
import HealthCodeCore
import Logging
import PostgresNIO

/// Table `publisher`: registration, revocation and the list the gateway authenticates against.
public struct PublisherStore: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Registers a new publisher; throws ``RegistryError`` `already-registered` if the id exists.
    public func add(_ publisher: PublisherRecord) async throws {
        let (kind, pem, hash): (String, String?, String?) =
            switch publisher.credential {
            case .es256PublicKey(let pem): ("es256", pem, nil)
            case .apiKeyHash(let hash): ("api-key", nil, hash)
            }
        let rows = try await client.query(
            """
            INSERT INTO publisher (publisher_id, credential, public_key_pem, api_key_sha256, event_types,
                events_per_second, burst_events, inbound_topic)
            VALUES (\(publisher.id), \(kind), \(pem), \(hash), \(publisher.eventTypes),
                \(publisher.rateLimit?.eventsPerSecond), \(publisher.rateLimit?.burstEvents), \(publisher.inboundTopic))
            ON CONFLICT (publisher_id) DO NOTHING
            RETURNING publisher_id
            """,
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "already-registered", context: publisher.id)
    }

    /// Registers `publisher` or, if its id exists, replaces its credential, event types and rate limit
    /// and lifts a revocation (used by `healthcode up` to register the demo publishers on every start).
    public func upsert(_ publisher: PublisherRecord) async throws {
        let (kind, pem, hash): (String, String?, String?) =
            switch publisher.credential {
            case .es256PublicKey(let pem): ("es256", pem, nil)
            case .apiKeyHash(let hash): ("api-key", nil, hash)
            }
        try await client.query(
            """
            INSERT INTO publisher (publisher_id, credential, public_key_pem, api_key_sha256, event_types,
                events_per_second, burst_events, inbound_topic)
            VALUES (\(publisher.id), \(kind), \(pem), \(hash), \(publisher.eventTypes),
                \(publisher.rateLimit?.eventsPerSecond), \(publisher.rateLimit?.burstEvents), \(publisher.inboundTopic))
            ON CONFLICT (publisher_id) DO UPDATE SET credential = excluded.credential, inbound_topic = excluded.inbound_topic,
                public_key_pem = excluded.public_key_pem, api_key_sha256 = excluded.api_key_sha256,
                event_types = excluded.event_types, events_per_second = excluded.events_per_second,
                burst_events = excluded.burst_events, revoked_at = NULL
            """,
            logger: logger
        )
    }

    /// Revokes a publisher; throws ``RegistryError`` `not-found` if no active publisher has that id.
    public func revoke(_ id: String) async throws {
        let rows = try await client.query(
            """
            UPDATE publisher SET revoked_at = now()
            WHERE publisher_id = \(id) AND revoked_at IS NULL RETURNING publisher_id
            """,
            logger: logger
        )
        for try await _ in rows.decode(String.self) { return }
        throw RegistryError(code: "not-found", context: id)
    }

    /// Every registered publisher, revoked ones included, ordered by id.
    public func all() async throws -> [PublisherRecord] {
        let rows = try await client.query(
            """
            SELECT publisher_id, credential, public_key_pem, api_key_sha256, event_types, events_per_second,
                burst_events, hc_micros(revoked_at), inbound_topic
            FROM publisher ORDER BY publisher_id
            """,
            logger: logger
        )
        var publishers: [PublisherRecord] = []
        for try await (id, kind, pem, hash, types, rate, burst, revokedAt, inboundTopic) in rows.decode(
            (String, String, String?, String?, [String], Int32?, Int32?, Int64?, String?).self
        ) {
            let credential: PublisherRecord.Credential =
                kind == "es256" ? .es256PublicKey(pem: pem ?? "") : .apiKeyHash(sha256Hex: hash ?? "")
            publishers.append(
                PublisherRecord(
                    id: id,
                    credential: credential,
                    eventTypes: types,
                    rateLimit: rate.flatMap { rate in
                        burst.map { PublisherRateLimit(eventsPerSecond: Int(rate), burstEvents: Int($0)) }
                    },
                    revokedAt: revokedAt.map(Instant.init(microsecondsSinceEpoch:)),
                    inboundTopic: inboundTopic
                )
            )
        }
        return publishers
    }

    /// The sources of archived events of `subject` (a pseudonym, or an area code when `isArea`)
    /// whose id is `eventID`: what a retraction with `retracts = eventID` could refer to.
    public func sources(ofEvent eventID: String, subject: String, isArea: Bool) async throws -> Set<String> {
        let rows =
            if isArea {
                try await client.query(
                    "SELECT source FROM area_event_archive WHERE area_code = \(subject) AND event_id = \(eventID)",
                    logger: logger
                )
            } else {
                try await client.query(
                    "SELECT source FROM event_archive WHERE subject = \(subject) AND event_id = \(eventID)",
                    logger: logger
                )
            }
        var sources = Set<String>()
        for try await source in rows.decode(String.self) { sources.insert(source) }
        return sources
    }
}
