import Foundation
import HealthCodeKafka
import HealthCodeTestSupport
import Synchronization
import Testing

/// Where a test's consumers "store" their progress: processed values and the next offset per partition,
/// updated together as a database transaction would.
final class OffsetStore: Sendable {
    private struct State {
        var nextOffsets: [KafkaTopicPartition: Int64] = [:]
        var processed: [String] = []
        var assignments: [String: [KafkaTopicPartition]] = [:]
        var violations = 0
        var produced = 0
        var producerDone = false
    }
    private let state = Mutex(State())

    /// Records a batch; returns false (and records nothing) if the batch does not start where the store
    /// says the partition continues, which would be a gap or a duplicate.
    func apply(_ batch: KafkaMessageBatch, consumer: String) -> Bool {
        state.withLock { state in
            let expected = state.nextOffsets[batch.topicPartition] ?? 0
            guard batch.first?.offset == expected else {
                state.violations += 1
                return false
            }
            state.processed.append(contentsOf: batch.map(\.valueString))
            state.nextOffsets[batch.topicPartition] = batch.nextOffset
            return true
        }
    }

    func startOffsets(_ partitions: [KafkaTopicPartition], consumer: String) -> [KafkaTopicPartition: KafkaOffset] {
        state.withLock { state in
            state.assignments[consumer, default: []].append(contentsOf: partitions)
            return Dictionary(uniqueKeysWithValues: partitions.map { ($0, .offset(state.nextOffsets[$0] ?? 0)) })
        }
    }

    func set(_ partition: KafkaTopicPartition, next: Int64) {
        state.withLock { $0.nextOffsets[partition] = next }
    }

    var processed: [String] { state.withLock { $0.processed } }
    var processedCount: Int { state.withLock { $0.processed.count } }
    var violations: Int { state.withLock { $0.violations } }
    var produced: Int { state.withLock { $0.produced } }
    var producerDone: Bool { state.withLock { $0.producerDone } }
    func setProduced(_ count: Int) { state.withLock { $0.produced = count } }
    func finishProducing() { state.withLock { $0.producerDone = true } }
    func assignments(of consumer: String) -> [KafkaTopicPartition] { state.withLock { $0.assignments[consumer] ?? [] } }
}

/// Counts batches handed out to a test's loop.
final class BatchCounter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// Consumer-group behaviour against the local broker: rebalancing, caller-owned offsets, pause/resume.
@Suite(.enabled(if: LocalInfrastructure.kafkaTestsEnabled), .timeLimit(.minutes(1)))
struct KafkaGroupTests {
    /// Two consumers of one group, the second joining mid-stream: every message is processed exactly once,
    /// each batch continuing exactly where the store says (no gap, no duplicate, nothing from revoked partitions).
    @Test func twoConsumersRebalanceMidStreamWithoutLoss() async throws {
        let topic = try await makeTopic("rebalance", partitions: 4)
        let group = LocalInfrastructure.uniqueName("group")
        let store = OffsetStore()
        let chunk = 100
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        func makeConsumer(_ name: String) throws -> KafkaConsumer {
            var configuration = fastGroupConfiguration(bootstrapServers: brokerServers, groupID: group)
            configuration.maxPollMessages = 50
            let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
            try consumer.subscribe(topics: [topic]) { partitions in
                store.startOffsets(partitions, consumer: name)
            }
            return consumer
        }
        let first = try makeConsumer("first")
        let second = try makeConsumer("second")
        try await withServices([producer, first]) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    // The stream goes on (~9 s at least) until the second consumer got partitions, and 3 s after.
                    var index = 0
                    var chunksAfterRebalance = 0
                    while index < 60 || chunksAfterRebalance < 20, index < 400 {
                        _ = try await producer.send(makeMessages(topic: topic, count: chunk, start: index * chunk))
                        index += 1
                        store.setProduced(index * chunk)
                        if !store.assignments(of: "second").isEmpty { chunksAfterRebalance += 1 }
                        try await Task.sleep(for: .milliseconds(150))
                    }
                    store.finishProducing()
                }
                tasks.addTask {
                    for try await batch in first.batches {
                        _ = store.apply(batch, consumer: "first")
                        try await Task.sleep(for: .milliseconds(2))  // a slow consumer keeps batches buffered
                    }
                }
                // The second consumer joins once the first is processing.
                while store.processedCount < 500 { try await Task.sleep(for: .milliseconds(50)) }
                try await withServices([second]) {
                    tasks.addTask {
                        for try await batch in second.batches {
                            _ = store.apply(batch, consumer: "second")
                        }
                    }
                    while !store.producerDone || store.processedCount < store.produced {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                // Stop iterating the first consumer; the group's graceful shutdown then closes it. (Closing
                // it here would end its service before the shutdown, which the group takes for a failure.)
                tasks.cancelAll()
                try await tasks.waitForAll()
            }
        }
        #expect(store.violations == 0)
        #expect(store.assignments(of: "second").count > 0, "the second consumer got partitions")
        let processed = store.processed
        let total = store.produced
        #expect(processed.count == total)
        #expect(Set(processed) == Set((0..<total).map { "value-\($0)" }))
    }

    /// A member that dies without leaving the group (its run is cancelled: the client is destroyed without
    /// a LeaveGroup, as in a crash) loses its partitions after the session timeout; the surviving member
    /// takes them over from the stored offsets: nothing is lost or applied twice.
    @Test func crashedMembersPartitionsMoveWithoutLoss() async throws {
        let topic = try await makeTopic("crash", partitions: 2)
        let group = LocalInfrastructure.uniqueName("group")
        let total = 2000
        let store = OffsetStore()
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        try await withServices([producer]) { _ = try await producer.send(makeMessages(topic: topic, count: total)) }
        func makeConsumer(_ name: String) throws -> KafkaConsumer {
            var configuration = fastGroupConfiguration(bootstrapServers: brokerServers, groupID: group)
            configuration.maxPollMessages = 20
            let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
            try consumer.subscribe(topics: [topic]) { partitions in store.startOffsets(partitions, consumer: name) }
            return consumer
        }
        let doomed = try makeConsumer("doomed")
        let crashed = Task {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await doomed.run() }
                for try await batch in doomed.batches {
                    _ = store.apply(batch, consumer: "doomed")
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        while store.processedCount < 200 { try await Task.sleep(for: .milliseconds(20)) }
        crashed.cancel()
        _ = await crashed.result
        let processedByDoomed = store.processedCount
        #expect(processedByDoomed < total)

        let survivor = try makeConsumer("survivor")
        try await withServices([survivor]) {
            for try await batch in survivor.batches {
                _ = store.apply(batch, consumer: "survivor")
                if store.processedCount >= total { break }
            }
        }
        #expect(store.violations == 0)
        #expect(Set(store.assignments(of: "survivor")).count == 2)
        #expect(store.processed.count == total)
        #expect(Set(store.processed) == Set((0..<total).map { "value-\($0)" }))
    }

    /// A member whose caller has no room for batches (its database is down, say) keeps iterating with no
    /// demand: its buffer stays full, the consumer pauses fetching and polls on, and its revocation hook
    /// runs. A joining member gets partitions and their messages within seconds, not after
    /// `max.poll.interval` (two minutes here, beyond this suite's time limit), and the stuck member
    /// hands out nothing meanwhile.
    @Test func memberWithNoDemandStillServesRebalances() async throws {
        let topic = try await makeTopic("stuck", partitions: 4)
        let group = LocalInfrastructure.uniqueName("group")
        let store = OffsetStore()
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        try await withServices([producer]) { _ = try await producer.send(makeMessages(topic: topic, count: 4000)) }
        func makeConsumer(_ name: String) throws -> KafkaConsumer {
            var configuration = fastGroupConfiguration(bootstrapServers: brokerServers, groupID: group)
            configuration.maxPollMessages = 50
            configuration.maxBufferedMessages = 100
            configuration.pauseWhenFullFor = .milliseconds(500)
            configuration.maxPollInterval = .seconds(120)
            let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
            try consumer.subscribe(topics: [topic]) { partitions in
                store.startOffsets(partitions, consumer: name)
            }
            return consumer
        }
        let stuck = try makeConsumer("stuck")
        stuck.setDemand { false }
        let joining = try makeConsumer("joining")
        let handedOut = BatchCounter()
        try await withServices([stuck]) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for try await _ in stuck.batches { handedOut.increment() }
                }
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(40)
                while stuck.bufferedMessageCount < 100, clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(stuck.bufferedMessageCount >= 100, "the stuck member's buffer filled")
                try await withServices([joining]) {
                    tasks.addTask {
                        for try await batch in joining.batches { _ = store.apply(batch, consumer: "joining") }
                    }
                    while store.processedCount < 500, clock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                tasks.cancelAll()
            }
        }
        #expect(store.assignments(of: "joining").count == 2, "the joining member got half of the partitions")
        #expect(store.processedCount >= 500, "and applied their messages")
        #expect(store.violations == 0)
        #expect(handedOut.count == 0, "a consumer without demand hands out no batch")
    }

    /// A member that paused its partitions (its lanes are full, say) loses half of them to a joining member
    /// and gets them back when that member leaves. librdkafka keeps an application's pause across a revoke
    /// and a new assignment to the same member; the consumer resumes every partition it is assigned, so the
    /// returned partitions are consumed again (while the ones it kept stay paused, as the caller asked).
    @Test func partitionsReturnedAfterARebalanceAreConsumed() async throws {
        let topic = try await makeTopic("returned", partitions: 4)
        let group = LocalInfrastructure.uniqueName("group")
        let store = OffsetStore()
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        func makeConsumer(_ name: String) throws -> KafkaConsumer {
            let consumer = try KafkaConsumer(
                configuration: fastGroupConfiguration(bootstrapServers: brokerServers, groupID: group),
                logger: testLogger()
            )
            try consumer.subscribe(topics: [topic]) { partitions in
                store.startOffsets(partitions, consumer: name)
            }
            return consumer
        }
        let first = try makeConsumer("first")
        let second = try makeConsumer("second")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(45)
        try await withServices([producer, first]) {
            for partition in 0..<Int32(4) {
                _ = try await producer.send(
                    makeMessages(topic: topic, count: 50, start: Int(partition) * 50, partition: partition)
                )
            }
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for try await batch in first.batches { _ = store.apply(batch, consumer: "first") }
                }
                while store.processedCount < 200, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                try await first.pause(Array(first.assignment()))
                try await withServices([second]) {
                    tasks.addTask {
                        for try await batch in second.batches { _ = store.apply(batch, consumer: "second") }
                    }
                    while store.assignments(of: "second").isEmpty, clock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                let handedOver = Set(store.assignments(of: "second"))
                #expect(!handedOver.isEmpty, "the joining member got partitions")
                // The second member left: its partitions return to the first.
                while store.assignments(of: "first").count < 4 + handedOver.count, clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(store.assignments(of: "first").count == 4 + handedOver.count, "the partitions came back")
                for partition in handedOver {
                    _ = try await producer.send(
                        makeMessages(
                            topic: topic,
                            count: 20,
                            start: 1000 + Int(partition.partition) * 20,
                            partition: partition.partition
                        )
                    )
                }
                let expected = Set(
                    handedOver.flatMap { partition in
                        (0..<20).map { "value-\(1000 + Int(partition.partition) * 20 + $0)" }
                    }
                )
                while !expected.isSubset(of: Set(store.processed)), clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let missing = expected.subtracting(store.processed)
                #expect(missing.isEmpty, "the returned partitions are consumed again: \(missing.count) of 40 missing")
                tasks.cancelAll()
            }
        }
        #expect(store.violations == 0)
    }

    /// A consumer restarted in the same group starts from the offsets its assignment hook returns, with
    /// incremental (cooperative) and eager assignment.
    @Test(arguments: [KafkaRebalanceProtocol.cooperativeSticky, .eagerRange])
    func resumesFromCallerStoredOffsets(rebalanceProtocol: KafkaRebalanceProtocol) async throws {
        let topic = try await makeTopic("resume", partitions: 1)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        let group = LocalInfrastructure.uniqueName("group")
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        try await withServices([producer]) { _ = try await producer.send(makeMessages(topic: topic, count: 100)) }
        let store = OffsetStore()
        store.set(partition, next: 60)  // the caller had processed offsets 0...59 before

        var configuration = fastGroupConfiguration(bootstrapServers: brokerServers, groupID: group)
        configuration.rebalanceProtocol = rebalanceProtocol
        let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
        let revoked = Mutex<[KafkaTopicPartition]>([])
        try consumer.subscribe(topics: [topic]) { partitions in
            store.startOffsets(partitions, consumer: "c")
        } onRevoke: { partitions in
            revoked.withLock { $0.append(contentsOf: partitions) }
        }
        try await withServices([consumer]) {
            let received = try await collect(consumer, count: 40)
            #expect(received.first?.offset == 60)
            #expect(received.map(\.offset) == Array(60..<100))
            #expect(received.first?.valueString == "value-60")
            #expect(consumer.assignment() == [partition])
            #expect(consumer.lag() == [partition: 0])
        }
    }

    /// A caller that does not take batches stops the consumer's polling: the buffer stays bounded.
    @Test func slowCallerBoundsTheBuffer() async throws {
        let topic = try await makeTopic("backpressure", partitions: 1)
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        var configuration = KafkaConsumerConfiguration(bootstrapServers: brokerServers)
        configuration.maxBufferedMessages = 100
        configuration.maxPollMessages = 50
        let consumer = try KafkaConsumer(configuration: configuration, logger: testLogger())
        try await withServices([producer, consumer]) {
            _ = try await producer.send(makeMessages(topic: topic, count: 2000))
            try consumer.assign([KafkaTopicPartition(topic: topic, partition: 0): .beginning])
            while consumer.bufferedMessageCount < 100 { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(500))  // a slow caller
            #expect(consumer.bufferedMessageCount <= 150)
            let all = try await collect(consumer, count: 2000)
            #expect(all.map(\.offset) == Array(0..<2000))
        }
    }

    /// Paused partitions deliver nothing until resumed; seek re-reads from an earlier offset.
    @Test func pauseResumeAndSeek() async throws {
        let topic = try await makeTopic("pause", partitions: 2)
        let zero = KafkaTopicPartition(topic: topic, partition: 0)
        let one = KafkaTopicPartition(topic: topic, partition: 1)
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        let consumer = try KafkaConsumer(configuration: .init(bootstrapServers: brokerServers), logger: testLogger())
        try await withServices([producer, consumer]) {
            try consumer.assign([zero: .beginning, one: .beginning])
            try await consumer.pause([zero])
            _ = try await producer.send(makeMessages(topic: topic, count: 20, partition: 0))
            _ = try await producer.send(makeMessages(topic: topic, count: 20, start: 100, partition: 1))
            let whilePaused = try await collect(consumer, count: 20)
            #expect(whilePaused.allSatisfy { $0.partition == 1 })
            #expect(whilePaused.count == 20)

            try await consumer.resume([zero])
            let afterResume = try await collect(consumer, count: 20)
            #expect(afterResume.allSatisfy { $0.partition == 0 })
            #expect(afterResume.map(\.offset) == Array(0..<20))

            try await consumer.seek(one, to: .offset(15))
            let afterSeek = try await collect(consumer, count: 5)
            #expect(afterSeek.map(\.offset) == Array(15..<20))
            #expect(afterSeek.allSatisfy { $0.partition == 1 })
        }
    }
}
