/// The producer's shared state: lifecycle, the in-flight bound and the senders waiting for room.
///
/// Every method runs under the producer's lock and returns what the caller must do outside it.
struct ProducerStateMachine {
    typealias Admission = Result<ProducerHandle, KafkaError>

    struct Waiter {
        var id: UInt64
        var count: Int
        var continuation: UnsafeContinuation<Admission, Never>
    }

    enum Phase {
        /// `run()` has not started the client yet; senders wait.
        case idle
        case running(ProducerHandle)
        /// The client hit a fatal error (idempotence broken, fenced): sends fail at once (retriably) while
        /// the poll thread waits for enqueuing senders, fails what the client holds, destroys it and
        /// creates a new one.
        case rebuilding(KafkaError)
        /// Shutting down: no new sends; the poll thread waits for enqueuing senders, then flushes.
        case draining(graceful: Bool)
        case finished
    }

    /// Continuations to resume outside the lock.
    struct Resumptions {
        var admitted: [(UnsafeContinuation<Admission, Never>, Admission)] = []

        func perform() {
            for (continuation, admission) in admitted {
                continuation.resume(returning: admission)
            }
        }
    }

    private let maxInFlight: Int
    private(set) var phase: Phase = .idle
    private var inFlight = 0
    /// Senders admitted and still calling librdkafka (they hold the handle).
    private var enqueuing = 0
    private var waiters: [Waiter] = []
    private var nextWaiterID: UInt64 = 0
    private var shutdownBeforeStart: Bool?
    private var pollThreadParked = false

    init(maxInFlight: Int) {
        self.maxInFlight = max(1, maxInFlight)
    }

    // MARK: Senders

    enum AdmitAction {
        case proceed(ProducerHandle)
        case wait
        case fail(KafkaError)
    }

    /// Tries to admit `count` messages without waiting.
    mutating func admit(count: Int) -> AdmitAction {
        switch phase {
        case .idle:
            return .wait
        case .running(let handle):
            guard waiters.isEmpty, fits(count) else { return .wait }
            inFlight += count
            enqueuing += 1
            return .proceed(handle)
        case .rebuilding(let error):
            return .fail(error)
        case .draining, .finished:
            return .fail(.closed("the producer is shutting down"))
        }
    }

    mutating func makeWaiterID() -> UInt64 {
        nextWaiterID += 1
        return nextWaiterID
    }

    /// Queues a sender for room, or answers it at once.
    mutating func wait(
        id: UInt64,
        count: Int,
        isCancelled: Bool,
        continuation: UnsafeContinuation<Admission, Never>
    ) -> Admission? {
        if isCancelled {
            return .failure(KafkaError(code: .cancelled, isRetriable: true, reason: "cancelled while waiting for room"))
        }
        switch admit(count: count) {
        case .proceed(let handle): return .success(handle)
        case .fail(let error): return .failure(error)
        case .wait:
            waiters.append(Waiter(id: id, count: count, continuation: continuation))
            return nil
        }
    }

    /// Removes a cancelled waiter; returns its continuation to fail.
    mutating func cancelWaiter(id: UInt64) -> UnsafeContinuation<Admission, Never>? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).continuation
    }

    /// A sender finished calling librdkafka; `rejected` of its messages were not queued (no report will come).
    /// Returns the waiters now admitted and whether the poll thread must be woken.
    mutating func enqueued(rejected: Int) -> (Resumptions, wakePollThread: Bool) {
        enqueuing -= 1
        inFlight -= rejected
        var wake = false
        switch phase {
        case .draining, .rebuilding:
            if enqueuing == 0, pollThreadParked {
                pollThreadParked = false
                wake = true
            }
        case .idle, .running, .finished:
            break
        }
        return (admitWaiters(), wake)
    }

    // MARK: Poll thread

    /// `count` messages got their delivery report.
    mutating func delivered(count: Int) -> Resumptions {
        inFlight -= count
        return admitWaiters()
    }

    /// `run()` created the client. Returns waiters to admit, and whether shutdown was already requested.
    mutating func start(_ handle: ProducerHandle) -> Resumptions {
        guard case .idle = phase else { preconditionFailure("KafkaProducer.run() called twice") }
        phase = .running(handle)
        if let graceful = shutdownBeforeStart {
            return beginShutdown(graceful: graceful)
        }
        return admitWaiters()
    }

    /// Graceful shutdown or cancellation was requested. Fails the waiting senders.
    mutating func beginShutdown(graceful: Bool) -> Resumptions {
        var resumptions = Resumptions()
        switch phase {
        case .idle:
            shutdownBeforeStart = graceful && (shutdownBeforeStart ?? true)
            return resumptions
        case .running, .rebuilding:
            phase = .draining(graceful: graceful)
        case .draining(let wasGraceful):
            phase = .draining(graceful: wasGraceful && graceful)
        case .finished:
            return resumptions
        }
        let error = KafkaError.closed("the producer is shutting down")
        resumptions.admitted = waiters.map { ($0.continuation, .failure(error)) }
        waiters.removeAll()
        return resumptions
    }

    enum PollAction {
        case poll
        /// Senders still hold the handle: park until the last one finishes.
        case park
        case drain(graceful: Bool)
        /// Fail what the client holds, destroy it and create a new one (``rebuilt(_:)``).
        case rebuild
    }

    /// What the poll thread does after a poll.
    mutating func pollThreadNext() -> PollAction {
        switch phase {
        case .idle, .finished, .running:
            return .poll
        case .rebuilding:
            if enqueuing > 0 {
                pollThreadParked = true
                return .park
            }
            return .rebuild
        case .draining(let graceful):
            if enqueuing > 0 {
                pollThreadParked = true
                return .park
            }
            return .drain(graceful: graceful)
        }
    }

    /// The client reported a fatal error: no more sends on it; the waiting senders fail (retriably).
    /// `nil` if it was known already (or the producer is shutting down).
    mutating func fatal(_ error: KafkaError) -> Resumptions? {
        guard case .running = phase else { return nil }
        phase = .rebuilding(error)
        var resumptions = Resumptions()
        resumptions.admitted = waiters.map { ($0.continuation, .failure(error)) }
        waiters.removeAll()
        return resumptions
    }

    /// The poll thread created a new client after a fatal error. Returns waiters to admit; `false` if
    /// shutdown began meanwhile (the new client is not used: destroy it).
    mutating func rebuilt(_ handle: ProducerHandle) -> (Resumptions, use: Bool) {
        guard case .rebuilding = phase else { return (Resumptions(), false) }
        phase = .running(handle)
        rebuilds += 1
        return (admitWaiters(), true)
    }

    /// Whether a fatal error's client is being replaced (the poll thread keeps trying while so).
    var isRebuilding: Bool {
        if case .rebuilding = phase { return true }
        return false
    }

    /// Clients replaced after fatal errors since start.
    private(set) var rebuilds = 0

    /// Whether sends are accepted now (not before the client exists, nor while it is rebuilt).
    var isSending: Bool {
        if case .running = phase { return true }
        return false
    }

    /// Whether a graceful drain was turned into a cancellation meanwhile.
    var isCancelled: Bool {
        if case .draining(graceful: false) = phase { return true }
        return false
    }

    /// `run()` could not create the client: fails the waiting senders and every later one.
    mutating func abandon(_ error: KafkaError) -> Resumptions {
        phase = .finished
        var resumptions = Resumptions()
        resumptions.admitted = waiters.map { ($0.continuation, .failure(error)) }
        waiters.removeAll()
        return resumptions
    }

    mutating func finish() {
        phase = .finished
    }

    // MARK: Helpers

    private func fits(_ count: Int) -> Bool {
        inFlight == 0 || inFlight + count <= maxInFlight
    }

    private mutating func admitWaiters() -> Resumptions {
        var resumptions = Resumptions()
        guard case .running(let handle) = phase else { return resumptions }
        while let first = waiters.first, fits(first.count) {
            waiters.removeFirst()
            inFlight += first.count
            enqueuing += 1
            resumptions.admitted.append((first.continuation, .success(handle)))
        }
        return resumptions
    }
}
