import Synchronization
import Testing

@testable import HealthCodeProjector

/// The chunk loop against an in-memory model of the stored position and its compare-and-set: the same
/// rules as `Projection.apply` (skip messages before the position, fence when the position moved).
struct BatchChunksTests {
    /// The partition as PostgreSQL holds it: the stored position and how often each offset was applied.
    final class StoredPartition: Sendable {
        struct State {
            var position: Int64
            var applied: [Int64: Int] = [:]
            var transactions = 0
        }
        let state: Mutex<State>

        init(position: Int64) { state = Mutex(State(position: position)) }

        /// Another member applies `offsets` (its batch in hand) from its own view of the position.
        func otherMemberApplies(_ offsets: Range<Int64>) {
            state.withLock { state in
                for offset in offsets { state.applied[offset, default: 0] += 1 }
                state.position = offsets.upperBound
            }
        }

        /// One transaction of the member under test: the messages at `offsets[range]`, from `from`.
        func apply(_ offsets: [Int64], _ range: Range<Int>, from: Int64) -> ProjectionOutcome {
            state.withLock { state in
                let messages = offsets[range].filter { $0 >= from }
                guard let last = messages.last else {
                    return .applied(next: from, events: 0, newEvents: 0, deadLetters: 0, codeChanges: 0)
                }
                guard state.position == from else { return .fenced(storedPosition: state.position) }
                state.transactions += 1
                for offset in messages { state.applied[offset, default: 0] += 1 }
                state.position = last + 1
                return .applied(next: last + 1, events: messages.count, newEvents: 0, deadLetters: 0, codeChanges: 0)
            }
        }
    }

    let offsets = Array(Int64(1_000)..<Int64(3_500))

    @Test func aBatchIsAppliedInChunksFromWhereEachLeft() async throws {
        let stored = StoredPartition(position: 1_000)
        try await BatchChunks(chunkSize: 1_000).apply(offsets.count, from: 1_000) { range, from in
            stored.apply(offsets, range, from: from)
        }
        let state = stored.state.withLock { $0 }
        #expect(state.position == 3_500)
        #expect(state.transactions == 3)
        #expect(state.applied.count == offsets.count && state.applied.values.allSatisfy { $0 == 1 })
    }

    @Test(arguments: [Int64(1_500), 2_000, 2_999])
    func afterAFenceTheRestOfTheBatchIsAppliedFromTheStoredPosition(movedTo: Int64) async throws {
        let stored = StoredPartition(position: 1_000)
        var first = true
        try await BatchChunks(chunkSize: 1_000).apply(offsets.count, from: 1_000) { range, from in
            if first {
                // The member that lost the partition commits its batch in hand first.
                first = false
                stored.otherMemberApplies(1_000..<movedTo)
            }
            return stored.apply(offsets, range, from: from)
        }
        let state = stored.state.withLock { $0 }
        #expect(state.position == 3_500)
        #expect(state.applied.count == offsets.count, "no offset of the batch is dropped")
        #expect(state.applied.values.allSatisfy { $0 == 1 }, "none is applied twice")
    }

    @Test func aPositionMovedPastTheBatchAppliesNothingOfIt() async throws {
        let stored = StoredPartition(position: 4_000)
        try await BatchChunks(chunkSize: 1_000).apply(offsets.count, from: 1_000) { range, from in
            stored.apply(offsets, range, from: from)
        }
        let state = stored.state.withLock { $0 }
        #expect(state.position == 4_000)
        #expect(state.transactions == 0)
    }

    @Test func aPositionMovedBackStopsTheBatch() async throws {
        let stored = StoredPartition(position: 500)
        var calls = 0
        try await BatchChunks(chunkSize: 1_000).apply(offsets.count, from: 1_000) { range, from in
            calls += 1
            return stored.apply(offsets, range, from: from)
        }
        #expect(calls == 1)
        #expect(stored.state.withLock { $0.transactions } == 0)
    }
}
