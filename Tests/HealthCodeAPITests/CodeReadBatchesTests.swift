import HealthCodeCore
import NIOCore
import Synchronization
import Testing

@testable import HealthCodePostgres

struct BatchStateTests {
    @Test func lookupsReadAloneUntilEveryReadSlotIsTaken() {
        var state = BatchState<Int>(readsInFlight: 2, maximumBatch: 3)
        #expect(state.arrive(1) == [1])
        #expect(state.arrive(2) == [2])
        #expect(state.arrive(3) == nil)
        #expect(state.running == 2)
        #expect(state.queue == [3])
    }

    @Test func aReturningReadHandsTheQueueOnInBatchesOldestFirst() {
        var state = BatchState<Int>(readsInFlight: 1, maximumBatch: 3)
        #expect(state.arrive(0) == [0])
        for waiter in 1...5 { #expect(state.arrive(waiter) == nil) }
        #expect(state.readFinished() == [1, 2, 3])
        #expect(state.readFinished() == [4, 5])
        #expect(state.running == 1)
        #expect(state.readFinished() == nil)
        #expect(state.running == 0)
        #expect(state.arrive(6) == [6])
    }
}

struct CodeReadBatchesTests {
    static func storedCode(_ subject: String) -> CodeStore.StoredCode {
        CodeStore.StoredCode(
            storedDecision: ByteBuffer(string: subject),
            ruleSet: RuleSetIdentity(id: "r", version: "1", hash: "sha256:00"),
            evaluatedAt: Instant(microsecondsSinceEpoch: 0)
        )
    }

    /// Counts reads and how many run at once.
    final class ReadLog: Sendable {
        struct Counts { var reads = 0, running = 0, mostRunning = 0, largestBatch = 0 }
        let counts = Mutex(Counts())

        func read(_ subjects: [String]) async throws -> [String: CodeStore.StoredCode] {
            counts.withLock {
                $0.reads += 1
                $0.running += 1
                $0.mostRunning = max($0.mostRunning, $0.running)
                $0.largestBatch = max($0.largestBatch, subjects.count)
            }
            try await Task.sleep(for: .milliseconds(2))
            counts.withLock { $0.running -= 1 }
            if subjects.contains("fails") { throw CancellationError() }
            var codes: [String: CodeStore.StoredCode] = [:]
            for subject in subjects where subject != "nobody" { codes[subject] = storedCode(subject) }
            return codes
        }
    }

    @Test func concurrentLookupsShareReadsAndEachGetsItsOwnCode() async throws {
        let log = ReadLog()
        let batches = CodeReadBatches(readsInFlight: 2, maximumBatch: 16) { try await log.read($0) }
        let subjects = (0..<300).map { $0 % 7 == 0 ? "nobody" : "person-\($0)" }
        try await withThrowingTaskGroup(of: (String, CodeStore.StoredCode?).self) { group in
            for subject in subjects { group.addTask { (subject, try await batches.code(of: subject)) } }
            for try await (subject, code) in group {
                if subject == "nobody" {
                    #expect(code == nil)
                } else {
                    #expect(code.map { String(buffer: $0.storedDecision) } == subject)
                }
            }
        }
        let counts = log.counts.withLock { $0 }
        #expect(counts.mostRunning <= 2)
        #expect(counts.largestBatch <= 16)
        #expect(counts.largestBatch > 1)
        #expect(counts.reads < 300)
    }

    @Test func aFailedReadFailsOnlyTheLookupsItServed() async throws {
        let log = ReadLog()
        let batches = CodeReadBatches(readsInFlight: 1, maximumBatch: 64) { try await log.read($0) }
        await #expect(throws: CancellationError.self) { try await batches.code(of: "fails") }
        #expect(try await batches.code(of: "person-1").map { String(buffer: $0.storedDecision) } == "person-1")
        #expect(log.counts.withLock { $0.running } == 0)
    }
}
