import HealthCodeKafka
import Synchronization

/// Hands consumed batches to one lane per partition: batches of one partition are applied in
/// order, one at a time; batches of different partitions are applied concurrently, so that one
/// partition's transaction runs in PostgreSQL while another's events are decoded and folded.
///
/// A partition whose lane already has a batch waiting is paused in the consumer until the lane
/// takes it, so that the consumer hands out other partitions' batches meanwhile instead of one
/// partition's backlog filling every slot. At most `limit` batches are taken from the consumer and
/// not yet applied; beyond that the consumer has no demand (``hasRoom``) and hands out nothing, its
/// buffer fills and fetching pauses (backpressure), while its iteration goes on for rebalances.
final class PartitionLanes: Sendable {
    /// The lanes' shared state; the mutex around it is held only to move batches between queues.
    /// Generic over the batch so that it can be tested without a consumer.
    struct State<Batch: Sendable>: Sendable {
        let limit: Int
        /// Batches waiting per partition, oldest first.
        var queues: [Int32: [Batch]] = [:]
        /// Partitions whose lane is running (applying or about to take its next batch).
        var running: Set<Int32> = []
        /// Partitions paused in the consumer because their lane has a batch waiting.
        var paused: Set<Int32> = []
        /// Batches taken from the consumer and not yet applied or dropped.
        var inFlight = 0

        /// Whether another batch may be taken from the consumer.
        var hasRoom: Bool { inFlight < limit }

        struct SubmitAction: Equatable {
            /// The partition had no running lane: start one.
            var startLane: Bool
            /// The partition's lane has a batch waiting now: pause the partition in the consumer.
            var pause: Bool
        }

        mutating func submit(_ batch: Batch, partition: Int32) -> SubmitAction {
            inFlight += 1
            queues[partition, default: []].append(batch)
            let startLane = running.insert(partition).inserted
            // A lane just started takes its first batch at once; a second one waits.
            let waiting = (queues[partition]?.count ?? 0) - (startLane ? 1 : 0)
            let pause = waiting >= 1 && paused.insert(partition).inserted
            return SubmitAction(startLane: startLane, pause: pause)
        }

        /// The lane's next batch, or `nil` when its queue is empty: then the lane stops (atomically,
        /// so that a batch submitted later starts a new lane). `resume` says that the partition was
        /// paused and nothing of it waits any more: resume it in the consumer.
        mutating func next(for partition: Int32) -> (batch: Batch, resume: Bool)? {
            guard var queue = queues[partition], !queue.isEmpty else {
                queues[partition] = nil
                running.remove(partition)
                return nil
            }
            let batch = queue.removeFirst()
            queues[partition] = queue
            let resume = queue.isEmpty && paused.remove(partition) != nil
            return (batch, resume)
        }

        /// `count` batches were applied or dropped. Returns whether that made room (tell the consumer).
        mutating func finished(_ count: Int) -> Bool {
            let hadRoom = hasRoom
            inFlight -= count
            return !hadRoom && hasRoom
        }

        /// Drops the waiting batches of `partitions` (revoked, or sought back; a running lane finishes its
        /// batch in hand: the stored-position compare-and-set keeps it from overwriting a new owner's
        /// work). Returns whether that made room, and whether one of them was paused in the consumer for
        /// its lane (resume it unless it was revoked).
        mutating func drop(_ partitions: Set<Int32>) -> (room: Bool, wasPaused: Bool) {
            var dropped = 0
            var wasPaused = false
            for partition in partitions {
                dropped += queues[partition]?.count ?? 0
                queues[partition]?.removeAll()
                if paused.remove(partition) != nil { wasPaused = true }
            }
            return (finished(dropped), wasPaused)
        }

        /// A lane failed: its waiting batches are dropped and it no longer runs.
        mutating func abandon(_ partition: Int32) -> Bool {
            running.remove(partition)
            return drop([partition]).room
        }
    }

    private let state: Mutex<State<KafkaMessageBatch>>
    /// Called (outside the lock) when room opens, so that the consumer hands out batches again.
    private let onRoom: @Sendable () -> Void

    init(limit: Int, onRoom: @escaping @Sendable () -> Void) {
        state = Mutex(State(limit: max(limit, 1)))
        self.onRoom = onRoom
    }

    /// Whether another batch may be taken from the consumer (its demand).
    var hasRoom: Bool { state.withLock { $0.hasRoom } }

    func submit(_ batch: KafkaMessageBatch) -> State<KafkaMessageBatch>.SubmitAction {
        state.withLock { $0.submit(batch, partition: batch.partition) }
    }

    func next(for partition: Int32) -> (batch: KafkaMessageBatch, resume: Bool)? {
        state.withLock { $0.next(for: partition) }
    }

    func finished() {
        if state.withLock({ $0.finished(1) }) { onRoom() }
    }

    /// Drops the waiting batches of `partitions`; returns whether one of them was paused for its lane.
    @discardableResult
    func drop(_ partitions: Set<Int32>) -> Bool {
        let (room, wasPaused) = state.withLock { $0.drop(partitions) }
        if room { onRoom() }
        return wasPaused
    }

    func abandon(_ partition: Int32) {
        if state.withLock({ $0.abandon(partition) }) { onRoom() }
    }
}
