import CRdkafka
import Foundation
import HealthCodeTestSupport
import Testing

@testable import HealthCodeKafka

/// Transactions on librdkafka's in-process mock cluster: consume–transform–produce with the input
/// offsets committed in the output's transaction. Needs no external broker.
///
/// What the mock cluster (librdkafka 2.16) does not do, so that these tests cannot rely on it:
/// its Fetch answers carry no aborted-transaction list and a last stable offset equal to the high
/// watermark, so `read_committed` consumers also read messages of aborted and of still open
/// transactions once they are written; InitProducerId hands a second producer with the same
/// transactional id a new producer id instead of fencing the first; TxnOffsetCommit is acknowledged but
/// not stored, so a committed transaction's offsets do not become the group's committed offsets. The
/// tests therefore abort transactions whose messages are still queued (never written), fence with the
/// error a broker answers a fenced producer, and read committed offsets that a plain commit stored.
/// The transaction markers the mock does write (one offset each, skipped by consumers) are counted
/// through the high watermark.
@Suite(.timeLimit(.minutes(1)))
struct KafkaTransactionTests {
    let cluster: KafkaMockCluster
    let input = "inbound"
    let output = "validated"
    let group = "ingest"

    init() throws {
        cluster = try KafkaMockCluster(brokers: 3, logger: testLogger())
        try cluster.createTopic(input, partitions: 2, replicationFactor: 3)
        try cluster.createTopic(output, partitions: 1, replicationFactor: 3)
    }

    var outputPartition: KafkaTopicPartition { KafkaTopicPartition(topic: output, partition: 0) }

    /// The producers' configuration: the mock cluster, quick reconnects and retries.
    func producerConfiguration() -> KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.properties = ["reconnect.backoff.max.ms": "200", "retry.backoff.max.ms": "200"]
        return configuration
    }

    /// Runs `body` with a new producer, then closes it and waits until its client is destroyed (before the
    /// mock cluster is).
    func withProducer<Result>(
        transactionalID: String = "ingest-0",
        configuration: KafkaProducerConfiguration? = nil,
        _ body: (KafkaTransactionalProducer) async throws -> Result
    ) async throws -> Result {
        let producer = try KafkaTransactionalProducer(
            configuration: configuration ?? producerConfiguration(),
            transactionalID: transactionalID,
            logger: testLogger()
        )
        do {
            let result = try await body(producer)
            await producer.closeAndWait()
            return result
        } catch {
            await producer.closeAndWait()
            throw error
        }
    }

    /// Reads the output partition from the beginning with a `read_committed` consumer until `count`
    /// messages arrived; returns them and the partition's end offset (data plus transaction markers).
    func readCommitted(count: Int) async throws -> (messages: [KafkaMessage], end: Int64) {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers)
        configuration.properties = [
            "isolation.level": "read_committed", "reconnect.backoff.max.ms": "200", "retry.backoff.max.ms": "200",
        ]
        let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
        let partition = outputPartition
        return try await withServices([consumer]) {
            try consumer.assign([partition: .beginning])
            let messages = try await collect(consumer, count: count, timeout: .seconds(20))
            let end = try await consumer.watermarks(for: [partition])[partition]?.high ?? -1
            return (messages, end)
        }
    }

    @Test func committedTransactionIsReadByReadCommittedConsumers() async throws {
        var messages = makeMessages(topic: output, count: 10, partition: 0)
        messages[0].headers = [KafkaHeader(key: "event-type", value: Array("test-result".utf8))]
        messages[1].headers = [KafkaHeader(key: "empty", value: nil), KafkaHeader(key: "n", value: [1, 2])]
        messages[2].key = nil
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.send(messages)
            try await producer.sendOffsets(
                [
                    KafkaTopicPartition(topic: input, partition: 0): 10,
                    KafkaTopicPartition(topic: input, partition: 1): 4,
                ],
                group: group,
                timeout: .seconds(20)
            )
            try await producer.commitTransaction(timeout: .seconds(20))
        }

        let (read, end) = try await readCommitted(count: 10)
        #expect(read.map(\.offset) == Array(0..<10))
        #expect(read.map(\.valueString) == (0..<10).map { "value-\($0)" })
        #expect(read.map(\.keyString) == (0..<10).map { $0 == 2 ? nil : "key-\($0)" })
        #expect(read[0].headers == messages[0].headers)
        #expect(read[1].headers == messages[1].headers)
        #expect(end == 11, "ten messages and one commit marker")
    }

    /// The mock does not store TxnOffsetCommit (see the suite), so the group's offsets are committed
    /// here as a member would; what ``KafkaConsumer/committedOffsets(of:timeout:)`` reads is the same.
    @Test func committedOffsetsAreTheGroupsAndOmitPartitionsWithoutOne() async throws {
        let first = KafkaTopicPartition(topic: input, partition: 0)
        let second = KafkaTopicPartition(topic: input, partition: 1)
        try await cluster.commitOffsets([first: 42], group: group)
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group),
            logger: testLogger()
        )
        #expect(try await consumer.committedOffsets(of: [first, second], timeout: .seconds(20)) == [first: 42])
        let other = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: "other"),
            logger: testLogger()
        )
        #expect(try await other.committedOffsets(of: [first, second], timeout: .seconds(20)).isEmpty)
        let groupless = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers),
            logger: testLogger()
        )
        let error = await #expect(throws: KafkaError.self) {
            try await groupless.committedOffsets(of: [first], timeout: .seconds(5))
        }
        #expect(error?.code == .configuration)
    }

    /// Aborting discards the transaction's queued messages (a long linger keeps them unsent, so that the
    /// mock's missing read_committed filtering does not matter); the next transaction's are read.
    @Test func abortedTransactionIsNeverReadAndLaterCommittedOnesAre() async throws {
        var configuration = producerConfiguration()
        configuration.linger = .seconds(5)
        try await withProducer(configuration: configuration) { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            var aborted = makeMessages(topic: output, count: 5, partition: 0)
            for index in aborted.indices { aborted[index].value = Array("aborted".utf8) }
            try await producer.send(aborted)
            try await producer.abortTransaction(timeout: .seconds(20))

            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 3, partition: 0))
            let started = ContinuousClock.now
            try await producer.commitTransaction(timeout: .seconds(20))
            #expect(ContinuousClock.now - started < .seconds(4), "committing sends at once, without waiting for linger")
        }

        let (read, end) = try await readCommitted(count: 3)
        #expect(read.map(\.valueString) == ["value-0", "value-1", "value-2"])
        #expect(end == 4, "only the committed transaction's messages and marker were written")
    }

    /// A second producer with the same transactional id fences the first. The mock does not fence (it
    /// hands the second producer a new producer id), so the first gets what a broker answers a fenced
    /// producer: PRODUCER_FENCED to its AddPartitionsToTxn.
    @Test func fencedProducerFailsFatallyAndItsTransactionIsNeverRead() async throws {
        try await withProducer(transactionalID: "ingest-fenced") { first in
            try await first.initializeTransactions(timeout: .seconds(20))
            try first.beginTransaction()
            try await withProducer(transactionalID: "ingest-fenced") { second in
                try await second.initializeTransactions(timeout: .seconds(20))
                cluster.failNextRequests(.addPartitionsToTxn, with: [.producerFenced])
                try await first.send(makeMessages(topic: output, count: 5, partition: 0))

                let fenced = try await #require(throws: KafkaError.self) {
                    try await first.commitTransaction(timeout: .seconds(20))
                }
                #expect(fenced.code == .transaction)
                #expect(fenced.isFatal)
                #expect(!fenced.isRetriable)
                #expect(!fenced.requiresAbort)
                #expect(fenced.rdkafkaName == "_FENCED")
                let begin = #expect(throws: KafkaError.self) { try first.beginTransaction() }
                #expect(begin?.isFatal == true)
                let send = await #expect(throws: KafkaError.self) {
                    try await first.send(makeMessages(topic: output, count: 1, partition: 0))
                }
                #expect(send?.isFatal == true)
                await first.closeAndWait()

                try second.beginTransaction()
                try await second.send(makeMessages(topic: output, count: 2, start: 100, partition: 0))
                try await second.commitTransaction(timeout: .seconds(20))
            }
        }

        let (read, end) = try await readCommitted(count: 2)
        #expect(read.map(\.valueString) == ["value-100", "value-101"])
        #expect(end == 3, "nothing of the fenced producer's transaction was written")
    }

    /// The coordinator answers EndTxn with CONCURRENT_TRANSACTIONS for longer than the commit waits:
    /// librdkafka reports a retriable timeout, and committing again completes the same transaction.
    @Test func retriableCommitErrorIsRetriedAndTheTransactionIsReadOnce() async throws {
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 5, partition: 0))
            try await producer.sendOffsets(
                [KafkaTopicPartition(topic: input, partition: 0): 5],
                group: group,
                timeout: .seconds(20)
            )
            cluster.failNextRequests(.endTxn, with: Array(repeating: .concurrentTransactions, count: 8))
            let error = try await #require(throws: KafkaError.self) {
                try await producer.commitTransaction(timeout: .milliseconds(300))
            }
            #expect(error.code == .transaction)
            #expect(error.isRetriable)
            #expect(!error.requiresAbort)
            #expect(!error.isFatal)
            try await producer.commitTransaction(timeout: .seconds(20))
        }

        let (read, end) = try await readCommitted(count: 5)
        #expect(read.map(\.valueString) == (0..<5).map { "value-\($0)" })
        #expect(end == 6, "five messages and one commit marker")
    }

    /// A partition that cannot join the transaction fails it: the error requires an abort, after which
    /// the whole transaction is done again and its messages are read once (the failed attempt's never
    /// left the producer).
    @Test func abortableErrorRequiresAbortAndTheRedoneTransactionIsReadOnce() async throws {
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            cluster.failNextRequests(.addPartitionsToTxn, with: [.topicAuthorizationFailed])
            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 5, partition: 0))
            let error = try await #require(throws: KafkaError.self) {
                try await producer.commitTransaction(timeout: .seconds(20))
            }
            #expect(error.code == .transaction)
            #expect(error.requiresAbort)
            #expect(!error.isRetriable)
            #expect(!error.isFatal)
            #expect(error.rdkafkaName == "TOPIC_AUTHORIZATION_FAILED")
            let send = await #expect(throws: KafkaError.self) {
                try await producer.send(makeMessages(topic: output, count: 1, partition: 0))
            }
            #expect(send?.code == .enqueue)
            #expect(send?.requiresAbort == true, "a failed transaction refuses messages until it is aborted")

            try await producer.abortTransaction(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 5, partition: 0))
            try await producer.sendOffsets(
                [KafkaTopicPartition(topic: input, partition: 0): 5],
                group: group,
                timeout: .seconds(20)
            )
            try await producer.commitTransaction(timeout: .seconds(20))
        }

        let (read, end) = try await readCommitted(count: 5)
        #expect(read.map(\.valueString) == (0..<5).map { "value-\($0)" })
        #expect(end == 6, "the failed attempt wrote nothing")
    }

    /// librdkafka treats REQUEST_TIMED_OUT from EndTxn as failing the transaction, although the code alone
    /// reads as transient: the error requires an abort and is not retriable, exactly as librdkafka flags it.
    @Test func commitErrorThatFailsTheTransactionRequiresAbort() async throws {
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 2, partition: 0))
            cluster.failNextRequests(.endTxn, with: [.requestTimedOut])
            let error = try await #require(throws: KafkaError.self) {
                try await producer.commitTransaction(timeout: .seconds(20))
            }
            #expect(error.requiresAbort)
            #expect(!error.isRetriable)
            #expect(!error.isFatal)
            #expect(error.rdkafkaName == "REQUEST_TIMED_OUT")
            #expect(error.description.contains("(requires abort)"))
            try await producer.abortTransaction(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 2, start: 2, partition: 0))
            try await producer.commitTransaction(timeout: .seconds(20))
        }
    }

    @Test func offsetsThatCannotBeCommittedRequireAbort() async throws {
        let offsets = [KafkaTopicPartition(topic: input, partition: 1): Int64(7)]
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            cluster.failNextRequests(.txnOffsetCommit, with: [.groupAuthorizationFailed])
            let error = try await #require(throws: KafkaError.self) {
                try await producer.sendOffsets(offsets, group: group, timeout: .seconds(20))
            }
            #expect(error.requiresAbort)
            #expect(!error.isFatal)
            #expect(error.rdkafkaName == "GROUP_AUTHORIZATION_FAILED")
            try await producer.abortTransaction(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.sendOffsets(offsets, group: group, timeout: .seconds(20))
            try await producer.commitTransaction(timeout: .seconds(20))
        }
    }

    /// With librdkafka's queue bounded to 5 messages, a send of 300 waits for room on its own thread and
    /// keeps their order.
    @Test func fullQueueMakesSendWaitAndKeepsOrder() async throws {
        var configuration = producerConfiguration()
        configuration.maxInFlightMessages = 5
        try await withProducer(configuration: configuration) { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            try await producer.send(makeMessages(topic: output, count: 300, partition: 0))
            try await producer.commitTransaction(timeout: .seconds(20))
        }
        let (read, end) = try await readCommitted(count: 300)
        #expect(read.map(\.valueString) == (0..<300).map { "value-\($0)" })
        #expect(end == 301)
    }

    @Test func sendOutsideATransactionIsRefused() async throws {
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            let error = await #expect(throws: KafkaError.self) {
                try await producer.send(makeMessages(topic: output, count: 1, partition: 0))
            }
            #expect(error?.code == .enqueue)
            #expect(error?.rdkafkaName == "_STATE")
            #expect(error?.requiresAbort == false)
        }
    }

    @Test func everyCallThrowsClosedAfterClose() async throws {
        try await withProducer { producer in
            try await producer.initializeTransactions(timeout: .seconds(20))
            try producer.beginTransaction()
            producer.close()
            producer.close()
            let begin = #expect(throws: KafkaError.self) { try producer.beginTransaction() }
            #expect(begin?.code == .closed)
            let calls: [@Sendable () async throws -> Void] = [
                { try await producer.initializeTransactions(timeout: .seconds(1)) },
                { try await producer.send(makeMessages(topic: output, count: 1, partition: 0)) },
                { try await producer.sendOffsets([:], group: group, timeout: .seconds(1)) },
                { try await producer.commitTransaction(timeout: .seconds(1)) },
                { try await producer.abortTransaction(timeout: .seconds(1)) },
            ]
            for call in calls {
                let error = await #expect(throws: KafkaError.self) { try await call() }
                #expect(error?.code == .closed)
            }
        }
    }

    @Test func propertiesMakeATransactionalProducer() {
        var configuration = KafkaProducerConfiguration(bootstrapServers: ["localhost:9092"])
        configuration.maxInFlightMessages = 1_000
        var properties = KafkaTransactionalProducer.rdkafkaProperties(
            configuration: configuration,
            transactionalID: "ingest-3"
        )
        #expect(properties["transactional.id"] == "ingest-3")
        #expect(properties["enable.idempotence"] == "true")
        #expect(properties["acks"] == "all")
        #expect(properties["queue.buffering.max.messages"] == "1000")
        #expect(properties["transaction.timeout.ms"] == "120000", "not below the 120 s delivery timeout")
        configuration.deliveryTimeout = .seconds(10)
        configuration.properties = ["queue.buffering.max.messages": "50"]
        properties = KafkaTransactionalProducer.rdkafkaProperties(configuration: configuration, transactionalID: "t")
        #expect(properties["transaction.timeout.ms"] == "60000")
        #expect(properties["queue.buffering.max.messages"] == "50")
        configuration.properties = ["transaction.timeout.ms": "30000"]
        properties = KafkaTransactionalProducer.rdkafkaProperties(configuration: configuration, transactionalID: "t")
        #expect(properties["transaction.timeout.ms"] == "30000")
    }
}
