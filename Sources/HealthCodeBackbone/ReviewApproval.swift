import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import HealthCodePostgres
import Logging
import PostgresNIO

extension Backbone {
    /// Approves (or rejects) held overrides as `officer` (the second-officer rule:
    /// ``HeldReview/refusal(toDecideBy:registered:)``), then appends every approved override not yet
    /// in the log, these and any an earlier approval left unpublished (see ``HeldReviewRelease``).
    /// Returns the refusals by id and what was appended. Nothing is appended after a rejection.
    public static func decideHeldReviews(
        _ ids: [Int64],
        approve: Bool,
        officer: String,
        topic: EventTopicConfiguration,
        postgres: PostgresClient,
        logger: Logger
    ) async throws -> (refusals: [Int64: HeldReviewRefusal], release: HeldReviewRelease.Outcome?) {
        try topic.validate()
        let store = ReviewOfficeStore(client: postgres, logger: logger)
        let refusals = try await store.decide(ids, approve: approve, officer: officer)
        guard approve else { return (refusals, nil) }
        var configuration = KafkaProducerConfiguration(bootstrapServers: topic.bootstrapServers)
        configuration.clientID = "healthcode-reviews"
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let release = HeldReviewRelease(
            offices: store,
            log: KafkaEventLog(producer: producer, topic: topic.topic),
            interval: .seconds(5),
            logger: logger
        )
        let outcome = try await withServices([producer], logger: logger) { try await release.publishApproved() }
        return (refusals, outcome)
    }
}
