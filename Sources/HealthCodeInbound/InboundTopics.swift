import HealthCodeCore
import HealthCodeKafka

/// Creates the inbound and rejects topics that do not exist yet, with the processor's partitions and a short
/// retention (``IngestProcessorConfiguration/inboundRetention``): what `healthcode publishers add --kafka` and
/// the processor itself (a broker that lost its topics) both do.
public struct InboundTopics: Sendable {
    let admin: KafkaAdmin
    let configuration: IngestProcessorConfiguration

    public init(admin: KafkaAdmin, configuration: IngestProcessorConfiguration) {
        self.admin = admin
        self.configuration = configuration
    }

    /// Makes sure each of `inbound` and its rejects topic exist.
    public func ensure(inbound: [String]) async throws {
        let existing = Set(try await admin.listTopics())
        let wanted = inbound.flatMap { [$0, InboundTopic.rejects(ofInbound: $0)] }
        let missing = wanted.filter { !existing.contains($0) }
        guard !missing.isEmpty else { return }
        let retention = "\(configuration.inboundRetention.components.seconds * 1000)"
        try await admin.createTopics(
            missing.map {
                KafkaTopicSpecification(
                    name: $0,
                    partitions: configuration.inboundPartitions,
                    configuration: ["retention.ms": retention]
                )
            }
        )
    }
}
