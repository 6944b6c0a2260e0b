import Synchronization

/// Reads materialised codes for concurrent lookups in as few round trips as the load needs ("natural
/// batching"). While fewer than `readsInFlight` reads run, a lookup reads its code alone, with no added
/// wait. Once they all run, lookups queue; when a read returns, the queue (up to `maximumBatch`) leaves as
/// one `= ANY($1)` read, led by its oldest lookup. Under load one round trip then serves many lookups,
/// and round trips are what PostgreSQL and its client spend most on.
public final class CodeReadBatches: Sendable {
    /// Reads the stored codes of some people (absent: no code).
    public typealias Read = @Sendable ([String]) async throws -> [String: CodeStore.StoredCode]

    struct Waiter: Sendable {
        var subject: String
        var continuation: CheckedContinuation<Turn, Never>
    }

    /// What a waiting lookup is woken up with: its answer, or a batch to read (itself first).
    enum Turn: Sendable {
        case answered(Result<CodeStore.StoredCode?, any Error>)
        case lead([Waiter])
    }

    private let state: Mutex<BatchState<Waiter>>
    private let read: Read

    /// - Parameters:
    ///   - readsInFlight: reads run at once before lookups queue (at most the pool's connections).
    ///   - maximumBatch: most lookups one read serves.
    public init(readsInFlight: Int, maximumBatch: Int, read: @escaping Read) {
        precondition(readsInFlight > 0 && maximumBatch > 0, "reads in flight and batch size must be positive")
        self.state = Mutex(BatchState(readsInFlight: readsInFlight, maximumBatch: maximumBatch))
        self.read = read
    }

    /// The stored code of `subject`, or `nil` if none is stored.
    public func code(of subject: String) async throws -> CodeStore.StoredCode? {
        let turn = await withCheckedContinuation { continuation in
            let waiter = Waiter(subject: subject, continuation: continuation)
            if let batch = state.withLock({ $0.arrive(waiter) }) {
                continuation.resume(returning: .lead(batch))
            }
        }
        switch turn {
        case .answered(let answer):
            return try answer.get()
        case .lead(let batch):
            let codes: Result<[String: CodeStore.StoredCode], any Error>
            do {
                codes = .success(try await read(batch.map(\.subject)))
            } catch {
                codes = .failure(error)
            }
            for waiter in batch.dropFirst() {
                waiter.continuation.resume(returning: .answered(codes.map { $0[waiter.subject] }))
            }
            if let next = state.withLock({ $0.readFinished() }) {
                next[0].continuation.resume(returning: .lead(next))
            }
            return try codes.get()[subject]
        }
    }
}

/// The queue of ``CodeReadBatches``: how many reads run and who waits. Every method returns what the
/// caller must do outside the lock.
struct BatchState<Waiter> {
    let readsInFlight: Int
    let maximumBatch: Int
    private(set) var running = 0
    private(set) var queue: [Waiter] = []

    init(readsInFlight: Int, maximumBatch: Int) {
        self.readsInFlight = readsInFlight
        self.maximumBatch = maximumBatch
    }

    /// A lookup arrives: the batch it reads alone now, or `nil` when it waits in the queue.
    mutating func arrive(_ waiter: Waiter) -> [Waiter]? {
        if running < readsInFlight {
            running += 1
            return [waiter]
        }
        queue.append(waiter)
        return nil
    }

    /// A read returned: the next batch (oldest first; its first waiter leads it), or `nil` when nobody
    /// waits and one read fewer runs.
    mutating func readFinished() -> [Waiter]? {
        guard !queue.isEmpty else {
            running -= 1
            return nil
        }
        let batch = Array(queue.prefix(maximumBatch))
        queue.removeFirst(batch.count)
        return batch
    }
}
