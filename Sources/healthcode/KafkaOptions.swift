import ArgumentParser
import HealthCodeBackbone

struct KafkaOptions: ParsableArguments {
    @Option(
        name: .customLong("kafka-bootstrap"),
        help: "Kafka bootstrap servers, comma-separated (HC_KAFKA_BOOTSTRAP)."
    )
    var bootstrap: String = Env.string(
        "HC_KAFKA_BOOTSTRAP",
        EventTopicConfiguration().bootstrapServers.joined(separator: ",")
    )
    @Option(name: .customLong("topic"), help: "Topic of all events (HC_TOPIC).")
    var topic: String = Env.string("HC_TOPIC", EventTopicConfiguration().topic)
    @Option(name: .customLong("partitions"), help: "Partitions when creating the topic (HC_TOPIC_PARTITIONS).")
    var partitions: Int = Env.int("HC_TOPIC_PARTITIONS", EventTopicConfiguration().partitions)

    func validate() throws {
        do { try configuration.validate() } catch { throw error.flagError(Self.flags) }
    }

    /// The flag of each setting of ``EventTopicConfiguration``.
    static let flags = ["bootstrapServers": "--kafka-bootstrap", "topic": "--topic", "partitions": "--partitions"]

    var configuration: EventTopicConfiguration {
        var configuration = EventTopicConfiguration()
        configuration.bootstrapServers = bootstrap.split(separator: ",").map { String($0) }
        configuration.topic = topic
        configuration.partitions = partitions
        return configuration
    }
}
