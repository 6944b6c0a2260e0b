import Foundation
import HealthCodeTestSupport
import Testing

@testable import HealthCodeKafka

/// Fault injection with librdkafka's in-process mock cluster: brokers going down, injected request
/// errors, leader changes. Needs no external broker.
@Suite(.timeLimit(.minutes(1)))
struct KafkaFaultInjectionTests {
    let cluster: KafkaMockCluster
    let topic = "events"

    init() throws {
        cluster = try KafkaMockCluster(brokers: 3, logger: testLogger())
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 3)
        try cluster.setLeader(topic: topic, partition: 0, broker: 1)
    }

    func producer(deliveryTimeout: Duration = .seconds(20)) throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.deliveryTimeout = deliveryTimeout
        configuration.requestTimeout = .seconds(2)
        configuration.properties = ["reconnect.backoff.max.ms": "200", "retry.backoff.max.ms": "200"]
        return try KafkaProducer(configuration: configuration, logger: testLogger())
    }

    func consumer() throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.properties = ["reconnect.backoff.max.ms": "200", "retry.backoff.max.ms": "200"]
        return try KafkaConsumer(configuration: configuration, logger: testLogger())
    }

    /// Reads the whole partition from the beginning.
    func readAll(count: Int) async throws -> [KafkaMessage] {
        let consumer = try consumer()
        return try await withServices([consumer]) {
            try consumer.assign([KafkaTopicPartition(topic: topic, partition: 0): .beginning])
            return try await collect(consumer, count: count)
        }
    }

    /// A member shut down while its JoinGroup is in flight leaves the group (LeaveGroup on close), so the
    /// next member is assigned at once instead of waiting for the coordinator's rebalance timeout
    /// (`max.poll.interval.ms`, 5 minutes) for a member that never returns.
    @Test func memberLeavingMidJoinLeavesTheGroupUsable() async throws {
        let group = "mid-join"
        for broker in Int32(1)...3 { try cluster.setBrokerRoundTrip(broker, latency: .milliseconds(1_500)) }
        let leaving = try KafkaConsumer(
            configuration: fastGroupConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group),
            logger: testLogger()
        )
        try leaving.subscribe(topics: [topic])
        try await withServices([leaving]) {
            try await Task.sleep(for: .milliseconds(2_000))
            #expect(leaving.assignment().isEmpty, "still joining when it shuts down")
        }
        for broker in Int32(1)...3 { try cluster.setBrokerRoundTrip(broker, latency: .zero) }
        let producer = try producer()
        try await withServices([producer]) { _ = try await producer.send(makeMessages(topic: topic, count: 10)) }
        let staying = try KafkaConsumer(
            configuration: fastGroupConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group),
            logger: testLogger()
        )
        try staying.subscribe(topics: [topic]) { partitions in
            Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) })
        }
        let started = ContinuousClock.now
        let received = try await withServices([staying]) {
            try await collect(staying, count: 10, timeout: .seconds(30))
        }
        #expect(received.count == 10, "the next member is assigned and reads the partition")
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    /// librdkafka's fatal-error injection: the producer stops sending at once (retriably), destroys the
    /// client and creates a new one after its rebuild delay, then sends again.
    @Test func fatalErrorRebuildsTheProducer() async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.fatalErrorRebuildDelay = .seconds(2)
        let producer = try KafkaProducer(configuration: configuration, logger: testLogger())
        try await withServices([producer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 1))
            #expect(producer.isSending)
            producer.injectFatalError()
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(5)
            while producer.isSending, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!producer.isSending, "a fatal error stops sending")
            let refused = await #expect(throws: KafkaError.self) {
                try await producer.send(makeMessages(topic: topic, count: 1, start: 1))
            }
            #expect(refused?.code == .fatal)
            #expect(refused?.isRetriable == true)
            while !producer.isSending, clock.now < deadline + .seconds(5) {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(producer.isSending, "rebuilt")
            #expect(producer.rebuilds == 1)
            let report = try await producer.send(makeMessages(topic: topic, count: 1, start: 2))
            #expect(report.first?.offset ?? -1 >= 1)
        }
    }

    @Test func brokerDownLongerThanDeliveryTimeoutFailsRetriablyAndNeverClaimsDelivery() async throws {
        let producer = try producer(deliveryTimeout: .seconds(2))
        try await withServices([producer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 1))
            try cluster.setBroker(1, up: false)
            let results = await producer.sendReportingEach(makeMessages(topic: topic, count: 20, start: 1))
            for result in results {
                guard case .failure(let error) = result else {
                    Issue.record("a message was reported delivered while its leader was down")
                    continue
                }
                #expect(error.code == .delivery)
                #expect(error.isRetriable)
                #expect(error.rdkafkaName == "_MSG_TIMED_OUT")
            }
            await #expect(throws: KafkaError.self) {
                try await producer.send(makeMessages(topic: topic, count: 1, start: 21))
            }
            try cluster.setBroker(1, up: true)
            let report = try await producer.send(makeMessages(topic: topic, count: 1, start: 100))
            let messages = try await readAll(count: Int(report[0].offset) + 1)
            #expect(messages.last?.valueString == "value-100")
            #expect(messages.first?.valueString == "value-0")
        }
    }

    @Test func brokerDownBrieflySendCompletesAfterRecovery() async throws {
        let producer = try producer()
        try await withServices([producer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 1))
            try cluster.setBroker(1, up: false)
            let sending = Task { try await producer.send(makeMessages(topic: topic, count: 50, start: 1)) }
            try await Task.sleep(for: .seconds(1))
            try cluster.setBroker(1, up: true)
            let reports = try await sending.value
            #expect(reports.map(\.offset) == Array(1...50))
            let messages = try await readAll(count: 51)
            #expect(messages.map(\.valueString) == (0...50).map { "value-\($0)" })
        }
    }

    @Test func injectedProduceErrorsAreRetriedWithoutDuplicates() async throws {
        let producer = try producer()
        try await withServices([producer]) {
            cluster.failNextRequests(
                .produce,
                with: [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas, .leaderNotAvailable]
            )
            var reports: [KafkaDeliveryReport] = []
            for chunk in 0..<4 {
                reports += try await producer.send(makeMessages(topic: topic, count: 50, start: chunk * 50))
            }
            #expect(reports.map(\.offset) == Array(0..<200))
            let messages = try await readAll(count: 200)
            #expect(messages.map(\.valueString) == (0..<200).map { "value-\($0)" })
        }
    }

    /// librdkafka fails messages whose produce request may have been written (the connection dropped
    /// before the response): the send reports a retriable failure, and the caller's retry delivers it.
    @Test func possiblyPersistedProduceFailsRetriablyAndRetrySucceeds() async throws {
        let producer = try producer()
        try await withServices([producer]) {
            cluster.failNextRequests(.produce, with: [.networkException])
            let error = try await #require(throws: KafkaError.self) {
                try await producer.send(makeMessages(topic: topic, count: 10))
            }
            #expect(error.isRetriable)
            let reports = try await producer.send(makeMessages(topic: topic, count: 10))
            let messages = try await readAll(count: Int(reports.last!.offset) + 1)
            #expect(Set(messages.map(\.valueString)) == Set((0..<10).map { "value-\($0)" }))
        }
    }

    @Test func nonRetriableProduceErrorFailsTheSend() async throws {
        let producer = try producer()
        try await withServices([producer]) {
            cluster.failNextRequests(.produce, with: [.messageTooLarge])
            let error = try await #require(throws: KafkaError.self) {
                try await producer.send(makeMessages(topic: topic, count: 1))
            }
            #expect(error.code == .delivery)
            #expect(!error.isRetriable)
            #expect(error.topic == topic)
            #expect(!error.description.contains("value-0"), "descriptions never include payloads")
        }
    }

    @Test func injectedFetchErrorsLoseAndDuplicateNothing() async throws {
        let producer = try producer()
        let consumer = try consumer()
        try await withServices([producer, consumer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 300))
            cluster.failNextRequests(
                .fetch,
                with: [.notLeaderForPartition, .requestTimedOut, .unknownTopicOrPartition, .networkException]
            )
            try consumer.assign([KafkaTopicPartition(topic: topic, partition: 0): .beginning])
            let messages = try await collect(consumer, count: 300)
            #expect(messages.map(\.offset) == Array(0..<300))
        }
    }

    @Test func leaderChangesWhileProducingAndConsuming() async throws {
        let producer = try producer()
        let consumer = try consumer()
        try await withServices([producer, consumer]) {
            try consumer.assign([KafkaTopicPartition(topic: topic, partition: 0): .beginning])
            _ = try await producer.send(makeMessages(topic: topic, count: 100))
            let before = try await collect(consumer, count: 100)
            try cluster.setLeader(topic: topic, partition: 0, broker: 2)
            _ = try await producer.send(makeMessages(topic: topic, count: 100, start: 100))
            try cluster.setLeader(topic: topic, partition: 0, broker: 3)
            _ = try await producer.send(makeMessages(topic: topic, count: 100, start: 200))
            let after = try await collect(consumer, count: 200)
            #expect((before + after).map(\.offset) == Array(0..<300))
            #expect((before + after).map(\.valueString) == (0..<300).map { "value-\($0)" })
        }
    }

    @Test func gracefulShutdownFlushesInFlightSends() async throws {
        let producer = try producer()
        try cluster.setBrokerRoundTrip(1, latency: .milliseconds(300))
        try await withServices([producer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 1))  // connected, producer id known
        }
        let second = try self.producer()
        let results = try await withThrowingTaskGroup(of: [Result<KafkaDeliveryReport, KafkaError>]?.self) { group in
            let services = ServiceGroupHandle()
            group.addTask {
                try await services.run([second])
                return nil
            }
            group.addTask {
                await second.sendReportingEach(makeMessages(topic: topic, count: 20, start: 1))
            }
            try await Task.sleep(for: .milliseconds(100))  // the sends are in flight
            await services.shutdown()
            var results: [Result<KafkaDeliveryReport, KafkaError>] = []
            for try await result in group { if let result { results = result } }
            return results
        }
        #expect(results.count == 20)
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } }, "graceful shutdown flushed them")
        let late = try await #require(throws: KafkaError.self) {
            try await second.send(makeMessages(topic: topic, count: 1))
        }
        #expect(late.code == .closed)
    }

    /// Cancellation (unlike graceful shutdown) does not wait: in-flight sends fail at once, retriably,
    /// and are never reported delivered.
    @Test func cancellationFailsInFlightSendsRetriably() async throws {
        let producer = try producer()
        let running = Task { try await producer.run() }
        _ = try await producer.send(makeMessages(topic: topic, count: 1))  // connected, producer id known
        try cluster.setBrokerRoundTrip(1, latency: .seconds(3))
        let sending = Task { await producer.sendReportingEach(makeMessages(topic: topic, count: 10, start: 1)) }
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        running.cancel()
        let results = await sending.value
        #expect(ContinuousClock.now - start < .seconds(2))
        for result in results {
            guard case .failure(let error) = result else {
                Issue.record("a purged message was reported delivered")
                continue
            }
            #expect(error.isRetriable)
            #expect(["_PURGE_INFLIGHT", "_PURGE_QUEUE"].contains(error.rdkafkaName))
        }
        _ = await running.result
    }

    /// At most `maxInFlightMessages` are unacknowledged: later sends wait for earlier reports.
    @Test func inFlightBoundMakesSendersWait() async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.maxInFlightMessages = 10
        configuration.linger = .milliseconds(1)
        let producer = try KafkaProducer(configuration: configuration, logger: testLogger())
        try await withServices([producer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 1))
            try cluster.setBrokerRoundTrip(1, latency: .milliseconds(300))
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<3 {
                    group.addTask {
                        _ = try await producer.send(makeMessages(topic: topic, count: 10, start: index * 10))
                    }
                }
                try await group.waitForAll()
            }
            #expect(ContinuousClock.now - start >= .milliseconds(850), "three full windows, one after the other")
            // A batch larger than the bound is admitted alone.
            let reports = try await producer.send(makeMessages(topic: topic, count: 25, start: 100))
            #expect(reports.count == 25)
        }
    }

    @Test func endOffsetsAndLag() async throws {
        let producer = try producer()
        var configuration = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.maxPollMessages = 10
        let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        try await withServices([producer, consumer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 250))
            let ends = try await consumer.watermarks(for: [partition])
            #expect(ends[partition] == KafkaWatermarks(low: 0, high: 250))
            try consumer.assign([partition: .offset(200)])
            var last: KafkaMessageBatch?
            for try await batch in consumer.batches {
                last = batch
                if batch.nextOffset == 250 { break }
            }
            #expect(last?.highWatermark == 250)
            #expect(last?.lag == 0)
            #expect(consumer.lag() == [partition: 0])
        }
    }
}
