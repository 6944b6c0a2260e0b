import HealthCodeCore
import HealthCodeKafka

/// The event log on Kafka: one topic, records keyed by pseudonym (or area code), so that all events
/// of a person land in one partition, in order.
public struct KafkaEventLog: EventLog {
    private let producer: KafkaProducer
    private let topic: String

    public init(producer: KafkaProducer, topic: String) {
        self.producer = producer
        self.topic = topic
    }

    public var isWriting: Bool { producer.isSending }

    public func append(_ records: [EventRecord]) async -> [Result<EventPosition, EventLogError>] {
        let messages = records.map { KafkaOutgoingMessage(topic: topic, key: Array($0.key.utf8), value: $0.value) }
        return Self.positions(await producer.sendReportingEach(messages))
    }

    /// Kafka's delivery reports as the log's answers: each message's position, or why it was not taken.
    public static func positions(
        _ reports: [Result<KafkaDeliveryReport, KafkaError>]
    ) -> [Result<EventPosition, EventLogError>] {
        reports.map { result in
            switch result {
            case .success(let report):
                .success(EventPosition(partition: report.partition, offset: report.offset))
            case .failure(let error):
                .failure(
                    EventLogError(code: error.code.description, isRetriable: error.isRetriable, detail: error.reason)
                )
            }
        }
    }
}
