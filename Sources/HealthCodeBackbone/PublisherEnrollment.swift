import HealthCodeCore
import HealthCodeGateway
import HealthCodePostgres
import Logging
import PostgresNIO

extension Backbone {
    /// Registers (or re-registers) `publishers`, each with a new random API key and `rateLimit`
    /// (`nil`: the gateway's default), and returns the keys by publisher id, for a caller that
    /// publishes on their behalf in the same process (`healthcode up`'s demo loader). Earlier keys
    /// of these publishers stop working.
    public static func enrollPublishers(
        _ publishers: [(id: String, eventTypes: [String])],
        rateLimit: PublisherRateLimit?,
        postgres: PostgresClient,
        logger: Logger
    ) async throws -> [String: String] {
        let store = PublisherStore(client: postgres, logger: logger)
        var keys: [String: String] = [:]
        for publisher in publishers {
            let key = PublisherAPIKey.generate()
            try await store.upsert(
                .apiKey(id: publisher.id, apiKey: key, eventTypes: publisher.eventTypes, rateLimit: rateLimit)
            )
            keys[publisher.id] = key
        }
        return keys
    }
}
