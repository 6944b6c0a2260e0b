import CRdkafka

/// Returns the offsets to start the newly assigned partitions from, typically read from where the caller
/// stores its progress. Partitions missing from the result start at ``KafkaOffset/committed``.
public typealias KafkaAssignmentHook =
    @Sendable (_ assigned: [KafkaTopicPartition]) async throws -> [KafkaTopicPartition: KafkaOffset]

/// Called when partitions are taken away, after the last batch of them was handed out and before
/// another consumer may get them. No message of these partitions is delivered afterwards.
public typealias KafkaRevocationHook = @Sendable (_ revoked: [KafkaTopicPartition]) async -> Void

/// The running consumer's librdkafka handle and its consumer queue.
final class ConsumerHandle: Sendable {
    let client: RDKafkaClient
    nonisolated(unsafe) let queue: OpaquePointer

    init(client: RDKafkaClient, queue: OpaquePointer) {
        self.client = client
        self.queue = queue
    }
}

/// Work for the poll thread, which alone calls librdkafka on the consumer's handle.
enum ConsumerCommand {
    case subscribe([String])
    case assign([(KafkaTopicPartition, KafkaOffset)])
    case seek(KafkaTopicPartition, KafkaOffset)
    case pause([KafkaTopicPartition])
    case resume([KafkaTopicPartition])
    case watermarks([KafkaTopicPartition], timeoutMilliseconds: Int32)
    case fetchedWatermarks([KafkaTopicPartition])
}

typealias ConsumerCommandResult = Result<[KafkaTopicPartition: KafkaWatermarks], KafkaError>

struct PendingConsumerCommand {
    var command: ConsumerCommand
    var continuation: UnsafeContinuation<ConsumerCommandResult, Never>?
}

/// A rebalance reported by librdkafka's callback.
enum RebalanceEvent {
    case assign([KafkaTopicPartition])
    case revoke([KafkaTopicPartition])

    var partitions: [KafkaTopicPartition] {
        switch self {
        case .assign(let partitions), .revoke(let partitions): partitions
        }
    }
}

/// The consumer's shared state: lifecycle, the buffer of fetched batches, rebalances in progress,
/// commands for the poll thread and the waiting iterator.
///
/// Every method runs under the consumer's lock and returns what the caller must do outside it.
struct ConsumerStateMachine {
    enum Phase {
        case idle
        case running(ConsumerHandle)
        case closing(ConsumerHandle?, graceful: Bool)
        case finished
    }

    enum PollThreadStatus {
        case working
        /// Blocked in librdkafka: wake it with `rd_kafka_queue_yield` (done under the lock).
        case inLibrdkafka
        case parked
    }

    enum Rebalance {
        case none
        /// Reported by librdkafka; the poll thread waits inside the callback for the iterator's hook.
        case pending(RebalanceEvent)
        case hookRunning(RebalanceEvent)
        /// The hook returned: the start offsets for an assignment (empty for a revocation).
        case hookCompleted([KafkaTopicPartition: KafkaOffset])
    }

    struct Hooks {
        var onAssign: KafkaAssignmentHook
        var onRevoke: KafkaRevocationHook
    }

    private let maxBufferedMessages: Int
    private let pauseWhenFullFor: Duration
    private(set) var phase: Phase = .idle
    private var pollThread = PollThreadStatus.working
    private var hooks: Hooks?
    private var commands: [PendingConsumerCommand] = []
    private var rebalance = Rebalance.none
    private var buffer: [KafkaMessageBatch] = []
    private var bufferedMessages = 0
    private var assigned: Set<KafkaTopicPartition> = []
    private var paused: Set<KafkaTopicPartition> = []
    /// Assigned partitions paused in librdkafka because the buffer stayed full (not by the caller).
    private var held: Set<KafkaTopicPartition> = []
    /// The buffer stayed full for ``pauseWhenFullFor`` with the caller taking nothing.
    private var stalled = false
    /// The caller took a batch since the poll thread last parked on a full buffer.
    private var deliveredSincePark = false
    /// Whether the caller wants batches now (``KafkaConsumer/setDemand(_:)``).
    private var hasDemand: @Sendable () -> Bool = { true }
    /// Next offset to hand out per partition (after the last delivered batch, or the start offset).
    private var positions: [KafkaTopicPartition: Int64] = [:]
    private var highWatermarks: [KafkaTopicPartition: Int64] = [:]
    private var iterator: UnsafeContinuation<Void, Never>?
    private var failure: (any Error)?
    private var failureReported = false

    init(maxBufferedMessages: Int, pauseWhenFullFor: Duration) {
        self.maxBufferedMessages = max(1, maxBufferedMessages)
        self.pauseWhenFullFor = pauseWhenFullFor
    }

    /// How to wake the poll thread after a change.
    enum Wake {
        case none
        case unpark
    }

    // MARK: Caller side

    mutating func setDemand(_ hasDemand: @escaping @Sendable () -> Bool) {
        self.hasDemand = hasDemand
    }

    mutating func setHooks(_ hooks: Hooks) throws(KafkaError) {
        guard self.hooks == nil else {
            throw KafkaError(code: .configuration, isRetriable: false, reason: "the consumer is already subscribed")
        }
        self.hooks = hooks
    }

    /// Queues a command for the poll thread (or fails it when the consumer is closing).
    mutating func enqueue(_ pending: PendingConsumerCommand) -> (Wake, failed: PendingConsumerCommand?) {
        switch phase {
        case .closing, .finished:
            return (.none, pending)
        case .idle, .running:
            commands.append(pending)
            return (wakePollThread(), nil)
        }
    }

    /// Close was requested (graceful shutdown, `close()`, failure) or the run was cancelled.
    mutating func close(
        graceful: Bool
    ) -> (Wake, failedCommands: [PendingConsumerCommand], iterator: UnsafeContinuation<Void, Never>?) {
        switch phase {
        case .idle:
            phase = .closing(nil, graceful: graceful)
        case .running(let handle):
            phase = .closing(handle, graceful: graceful)
        case .closing(let handle, let wasGraceful):
            phase = .closing(handle, graceful: wasGraceful && graceful)
        case .finished:
            return (.none, [], nil)
        }
        let failed = commands
        commands.removeAll()
        buffer.removeAll()
        bufferedMessages = 0
        let waitingIterator = iterator
        iterator = nil
        return (wakePollThread(), failed, waitingIterator)
    }

    func lag() -> [KafkaTopicPartition: Int64] {
        var result: [KafkaTopicPartition: Int64] = [:]
        for partition in assigned {
            if let high = highWatermarks[partition], let position = positions[partition] {
                result[partition] = max(0, high - position)
            }
        }
        return result
    }

    var assignment: Set<KafkaTopicPartition> { assigned }

    var bufferedMessageCount: Int { bufferedMessages }

    // MARK: Iterator

    enum IteratorAction {
        case deliver(KafkaMessageBatch, Wake)
        case runAssignHook(KafkaAssignmentHook, [KafkaTopicPartition])
        case runRevokeHook(KafkaRevocationHook, [KafkaTopicPartition])
        case suspend
        case fail(any Error)
        case end
    }

    mutating func nextIteratorAction() -> IteratorAction {
        if let failure, !failureReported {
            failureReported = true
            return .fail(failure)
        }
        switch phase {
        case .closing, .finished: return .end
        case .idle, .running: break
        }
        if case .pending(let event) = rebalance, let hooks {
            rebalance = .hookRunning(event)
            switch event {
            case .assign(let partitions): return .runAssignHook(hooks.onAssign, partitions)
            case .revoke(let partitions): return .runRevokeHook(hooks.onRevoke, partitions)
            }
        }
        guard hasDemand(), let index = buffer.firstIndex(where: { !paused.contains($0.topicPartition) }) else {
            return .suspend
        }
        let batch = buffer.remove(at: index)
        bufferedMessages -= batch.count
        positions[batch.topicPartition] = batch.nextOffset
        deliveredSincePark = true
        // Below the limit the poll thread polls again; with partitions held, it resumes them first
        // (it waits inside librdkafka then, so it is yielded).
        var wake = Wake.none
        if bufferedMessages < maxBufferedMessages { wake = held.isEmpty ? wakeParkedPollThread() : wakePollThread() }
        return .deliver(batch, wake)
    }

    /// Stores the iterator's continuation, unless there is something to do already.
    mutating func suspendIterator(_ continuation: UnsafeContinuation<Void, Never>, isCancelled: Bool) -> Bool {
        precondition(iterator == nil, "KafkaConsumer.batches is iterated by more than one task")
        if isCancelled || hasWorkForIterator { return false }
        iterator = continuation
        return true
    }

    mutating func cancelIterator() -> UnsafeContinuation<Void, Never>? {
        defer { iterator = nil }
        return iterator
    }

    /// The iterator's hook finished: hand the result to the poll thread waiting in the rebalance callback.
    mutating func hookCompleted(offsets: [KafkaTopicPartition: KafkaOffset]) -> Wake {
        guard case .hookRunning = rebalance else { return .none }
        rebalance = .hookCompleted(offsets)
        return wakeParkedPollThread()
    }

    /// The assignment hook threw: the consumer fails and closes (leaving the group).
    mutating func hookFailed(_ error: any Error) -> (Wake, failedCommands: [PendingConsumerCommand]) {
        failure = error
        failureReported = true  // the iterator rethrows it directly
        rebalance = .none
        let (wake, failed, _) = close(graceful: true)
        return (wake, failed)
    }

    private var hasWorkForIterator: Bool {
        if failure != nil, !failureReported { return true }
        switch phase {
        case .closing, .finished: return true
        case .idle, .running: break
        }
        if case .pending = rebalance, hooks != nil { return true }
        return hasDemand() && buffer.contains { !paused.contains($0.topicPartition) }
    }

    // MARK: Poll thread

    enum PollThreadAction {
        case execute([PendingConsumerCommand])
        case poll(ConsumerHandle)
        /// Wait for room in the buffer; report a timeout with ``parkTimedOut()``.
        case park(timeout: Duration)
        /// Pause these partitions in librdkafka (the buffer stayed full), then ``fetchingHeld(_:)``.
        case holdFetching([KafkaTopicPartition])
        /// Resume the held partitions (there is room again), then ``fetchingReleased(_:)``.
        case releaseFetching([KafkaTopicPartition])
        case close(graceful: Bool)
    }

    mutating func start(_ handle: ConsumerHandle) {
        switch phase {
        case .idle: phase = .running(handle)
        case .closing(_, let graceful): phase = .closing(handle, graceful: graceful)
        case .running, .finished: preconditionFailure("KafkaConsumer.run() called twice")
        }
    }

    mutating func nextPollThreadAction() -> PollThreadAction {
        switch phase {
        case .idle, .finished:
            preconditionFailure("the poll thread runs only while the consumer runs")
        case .closing(_, let graceful):
            pollThread = .working
            return .close(graceful: graceful)
        case .running(let handle):
            if !commands.isEmpty {
                let pending = commands
                commands.removeAll()
                pollThread = .working
                return .execute(pending)
            }
            if bufferedMessages >= maxBufferedMessages {
                guard stalled || !held.isEmpty else {
                    pollThread = .parked
                    deliveredSincePark = false
                    return .park(timeout: pauseWhenFullFor)
                }
                // Held: every fetching partition is paused, and polling serves rebalances (librdkafka
                // drops what it had prefetched for paused partitions).
                let unheld = assigned.subtracting(paused).subtracting(held)
                if !unheld.isEmpty {
                    pollThread = .working
                    return .holdFetching(unheld.sorted())
                }
                pollThread = .inLibrdkafka
                return .poll(handle)
            }
            stalled = false
            if !held.isEmpty {
                pollThread = .working
                return .releaseFetching(held.sorted())
            }
            pollThread = .inLibrdkafka
            return .poll(handle)
        }
    }

    /// The poll thread's wait for room timed out. If the caller took no batch meanwhile and the buffer
    /// is still full, the caller is stalled: its partitions are held from now on. (A slow caller that
    /// takes batches keeps librdkafka's prefetched messages.)
    mutating func parkTimedOut() {
        guard case .parked = pollThread else { return }  // woken meanwhile: its wake-up is pending
        pollThread = .working
        if bufferedMessages >= maxBufferedMessages, !deliveredSincePark { stalled = true }
    }

    /// The poll thread paused `partitions` in librdkafka (or tried: a failure is logged and not retried).
    mutating func fetchingHeld(_ partitions: [KafkaTopicPartition]) {
        held.formUnion(partitions.filter { assigned.contains($0) && !paused.contains($0) })
    }

    /// The poll thread resumed `partitions` in librdkafka.
    mutating func fetchingReleased(_ partitions: [KafkaTopicPartition]) {
        held.subtract(partitions)
    }

    /// The poll thread got `batches` from librdkafka. Batches of partitions no longer assigned (revoked
    /// meanwhile) are dropped. Returns the iterator to resume.
    mutating func received(_ batches: [KafkaMessageBatch]) -> UnsafeContinuation<Void, Never>? {
        pollThread = .working
        guard case .running = phase else { return nil }
        for batch in batches where assigned.contains(batch.topicPartition) {
            buffer.append(batch)
            bufferedMessages += batch.count
            if batch.highWatermark >= 0 { highWatermarks[batch.topicPartition] = batch.highWatermark }
        }
        return takeIteratorIfWork()
    }

    /// Commands were performed on the poll thread: records their effect on the buffer and assignment.
    mutating func executed(_ command: ConsumerCommand, succeeded: Bool) {
        guard succeeded else { return }
        switch command {
        case .subscribe, .watermarks, .fetchedWatermarks:
            break
        case .assign(let partitions):
            assigned = Set(partitions.map(\.0))
            paused.removeAll()
            held.removeAll()
            dropBuffered { _ in true }
            positions.removeAll()
            for (partition, offset) in partitions where offset.rawValue >= 0 {
                positions[partition] = offset.rawValue
            }
        case .seek(let partition, let offset):
            dropBuffered { $0 == partition }
            positions[partition] = offset.rawValue >= 0 ? offset.rawValue : nil
        case .pause(let partitions):
            paused.formUnion(partitions)
            held.subtract(partitions)  // the caller's now: not resumed with the held ones
        case .resume(let partitions):
            paused.subtract(partitions)
        }
    }

    /// After commands: the iterator may now have something to take (resumed partitions).
    mutating func takeIteratorIfWork() -> UnsafeContinuation<Void, Never>? {
        guard iterator != nil, hasWorkForIterator else { return nil }
        defer { iterator = nil }
        return iterator
    }

    enum RebalanceStart {
        /// Apply librdkafka's default (no hooks, or closing).
        case applyDefault
        /// Wait for the iterator's hook; resume the iterator if it waits.
        case waitForHook(UnsafeContinuation<Void, Never>?)
    }

    /// librdkafka reported a rebalance (poll thread, inside the callback). Revoked partitions' buffered
    /// batches are dropped at once: they are never delivered after this point.
    mutating func rebalanceStarted(_ event: RebalanceEvent) -> RebalanceStart {
        if case .revoke(let partitions) = event {
            let revoked = Set(partitions)
            assigned.subtract(revoked)
            held.subtract(revoked)
            dropBuffered { revoked.contains($0) }
        }
        guard case .running = phase, hooks != nil, !event.partitions.isEmpty else { return .applyDefault }
        rebalance = .pending(event)
        return .waitForHook(takeIteratorIfWork())
    }

    enum RebalanceProgress {
        case park
        case execute([PendingConsumerCommand])
        case apply([KafkaTopicPartition: KafkaOffset])
        case applyDefault
    }

    /// The poll thread, waiting inside the rebalance callback, asks what to do.
    mutating func rebalanceProgress() -> RebalanceProgress {
        switch phase {
        case .closing, .finished, .idle:
            rebalance = .none
            pollThread = .working
            return .applyDefault
        case .running:
            break
        }
        if !commands.isEmpty {
            let pending = commands
            commands.removeAll()
            pollThread = .working
            return .execute(pending)
        }
        if case .hookCompleted(let offsets) = rebalance {
            rebalance = .none
            pollThread = .working
            return .apply(offsets)
        }
        pollThread = .parked
        return .park
    }

    /// librdkafka applied an assignment (or revocation) with these start offsets.
    mutating func rebalanceApplied(_ event: RebalanceEvent, offsets: [KafkaTopicPartition: KafkaOffset]) {
        switch event {
        case .assign(let partitions):
            for partition in partitions {
                assigned.insert(partition)
                paused.remove(partition)
                held.remove(partition)
                let offset = offsets[partition]?.rawValue ?? -1
                positions[partition] = offset >= 0 ? offset : nil
            }
        case .revoke(let partitions):
            for partition in partitions {
                positions[partition] = nil
                highWatermarks[partition] = nil
                paused.remove(partition)
            }
        }
    }

    /// A fatal consumer error: fail the iterator and close.
    mutating func fail(
        _ error: KafkaError
    ) -> (Wake, failedCommands: [PendingConsumerCommand], UnsafeContinuation<Void, Never>?) {
        if failure == nil { failure = error }
        return close(graceful: true)
    }

    /// The poll thread destroyed the client. Returns the failure to report from `run()`.
    mutating func finish() -> (any Error)? {
        phase = .finished
        return failure
    }

    // MARK: Helpers

    private mutating func dropBuffered(where shouldDrop: (KafkaTopicPartition) -> Bool) {
        buffer.removeAll { batch in
            guard shouldDrop(batch.topicPartition) else { return false }
            bufferedMessages -= batch.count
            return true
        }
    }

    private mutating func wakeParkedPollThread() -> Wake {
        guard case .parked = pollThread else { return .none }
        pollThread = .working
        return .unpark
    }

    /// Wakes the poll thread wherever it waits. A poll thread inside librdkafka is yielded here, under the
    /// lock, so that the handle cannot be destroyed meanwhile.
    private mutating func wakePollThread() -> Wake {
        switch pollThread {
        case .working:
            return .none
        case .parked:
            pollThread = .working
            return .unpark
        case .inLibrdkafka:
            if case .running(let handle) = phase {
                rd_kafka_queue_yield(handle.queue)
            } else if case .closing(let handle?, _) = phase {
                rd_kafka_queue_yield(handle.queue)
            }
            return .none
        }
    }
}
