import CRdkafka
import HealthCodeTestSupport
import Testing

@testable import HealthCodeKafka

/// Configuration mapping and errors; no broker needed.
struct KafkaConfigurationTests {
    @Test func producerDefaultsMapToIdempotentAcksAll() {
        var configuration = KafkaProducerConfiguration(bootstrapServers: ["a:1", "b:2"])
        configuration.linger = .microseconds(1500)
        configuration.compression = .lz4
        configuration.statisticsInterval = .seconds(5)
        configuration.properties = ["linger.ms": "7"]
        let properties = configuration.rdkafkaProperties
        #expect(properties["bootstrap.servers"] == "a:1,b:2")
        #expect(properties["enable.idempotence"] == "true")
        #expect(properties["acks"] == "all")
        #expect(properties["compression.codec"] == "lz4")
        #expect(properties["partitioner"] == "murmur2_random")
        #expect(properties["statistics.interval.ms"] == "5000")
        #expect(properties["linger.ms"] == "7", "raw properties override the typed fields")
        #expect(KafkaProducerConfiguration(bootstrapServers: []).rdkafkaProperties["statistics.interval.ms"] == "0")
        #expect(Duration.microseconds(1500).milliseconds == 2, "durations round up to whole milliseconds")
    }

    @Test func consumerNeverCommitsOffsets() {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: ["a:1"], groupID: "g")
        configuration.rebalanceProtocol = .eagerRange
        configuration.sessionTimeout = .seconds(6)
        let properties = configuration.rdkafkaProperties
        #expect(properties["enable.auto.commit"] == "false")
        #expect(properties["enable.auto.offset.store"] == "false")
        #expect(properties["group.id"] == "g")
        #expect(properties["partition.assignment.strategy"] == "range")
        #expect(properties["session.timeout.ms"] == "6000")
        #expect(properties["fetch.min.bytes"] == "1", "a fetch answers as soon as anything is there by default")
    }

    @Test func fetchWaitsForItsMinimumUpToItsLongestWait() {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: ["a:1"])
        configuration.fetchMinBytes = 1 << 20
        configuration.fetchMaxWait = .milliseconds(100)
        let properties = configuration.rdkafkaProperties
        #expect(properties["fetch.min.bytes"] == "1048576")
        #expect(properties["fetch.wait.max.ms"] == "100")
        configuration.fetchMinBytes = 0
        #expect(configuration.rdkafkaProperties["fetch.min.bytes"] == "1", "librdkafka refuses 0")
    }

    @Test func invalidPropertiesAreRejectedAtInit() {
        var configuration = KafkaProducerConfiguration(bootstrapServers: ["a:1"])
        configuration.properties = ["no.such.property": "1"]
        let error = #expect(throws: KafkaError.self) {
            try KafkaProducer(configuration: configuration, logger: testLogger())
        }
        #expect(error?.code == .configuration)
        #expect(error?.isRetriable == false)
        #expect(error?.description.contains("no.such.property") == true)
    }

    @Test func subscribingWithoutGroupFails() throws {
        let consumer = try KafkaConsumer(configuration: .init(bootstrapServers: ["a:1"]), logger: testLogger())
        #expect(throws: KafkaError.self) { try consumer.subscribe(topics: ["t"]) }
    }

    @Test func errorsNameLibrdkafkaCodesAndRetriability() {
        let timedOut = KafkaError(code: .delivery, rdkafka: RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, topic: "t", partition: 3)
        #expect(timedOut.isRetriable)
        #expect(timedOut.rdkafkaName == "_MSG_TIMED_OUT")
        #expect(timedOut.description.contains("topic t, partition 3"))
        let tooLarge = KafkaError(code: .delivery, rdkafka: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        #expect(!tooLarge.isRetriable)
    }
}
