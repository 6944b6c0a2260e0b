import Synchronization

/// A transaction or read did not finish within its deadline (the projector's transaction timeout, the
/// query API's read timeout).
public struct TransactionTimeout: Error, CustomStringConvertible {
    /// What the transaction was doing, e.g. `partition 3` or `re-evaluation`.
    public var work: String
    public var timeout: Duration

    public var description: String {
        "transaction (\(work)) did not finish within \(timeout)"
    }
}

/// Stops waiting for an operation after a deadline.
///
/// A PostgreSQL connection that the server dropped while a query was in flight can leave that query
/// waiting for good in the client, and a task group would wait for it. So the operation runs in a task
/// of its own: after the deadline (or on cancellation) the caller stops waiting, and the operation is
/// cancelled and left to end on its own. The projector then retries its batch (safe: a batch commits
/// only by moving its partition's stored position by compare-and-set, so if the abandoned transaction
/// commits after all, the retry is fenced, or the other way round); the query API answers 503.
public enum TransactionDeadline {
    /// Runs `operation`, throwing ``TransactionTimeout`` if it has not finished after `timeout`.
    public static func run<Result: Sendable>(
        work: String,
        timeout: Duration,
        _ operation: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let race = Race<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                race.start(
                    continuation,
                    work: Task {
                        do {
                            race.finish(.success(try await operation()))
                        } catch {
                            race.finish(.failure(error))
                        }
                    },
                    timer: Task {
                        guard (try? await Task.sleep(for: timeout)) != nil else { return }
                        race.finish(.failure(TransactionTimeout(work: work, timeout: timeout)))
                    }
                )
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// The operation against the timer: whichever finishes first resumes the waiter, once.
    final class Race<Result: Sendable>: Sendable {
        private struct State {
            var waiter: CheckedContinuation<Result, any Error>?
            var work: Task<Void, Never>?
            var timer: Task<Void, Never>?
            /// Set when something finished before `start` recorded the waiter.
            var early: Swift.Result<Result, any Error>?
        }

        private let state = Mutex(State())

        func start(_ waiter: CheckedContinuation<Result, any Error>, work: Task<Void, Never>, timer: Task<Void, Never>)
        {
            let early = state.withLock { state -> Swift.Result<Result, any Error>? in
                state.work = work
                state.timer = timer
                guard let early = state.early else {
                    state.waiter = waiter
                    return nil
                }
                return early
            }
            if let early {
                timer.cancel()
                if case .failure = early { work.cancel() }
                waiter.resume(with: early)
            }
        }

        func finish(_ outcome: Swift.Result<Result, any Error>) {
            let taken = state.withLock {
                state -> (CheckedContinuation<Result, any Error>, Task<Void, Never>?, Task<Void, Never>?)? in
                guard let waiter = state.waiter else {
                    if state.early == nil { state.early = outcome }
                    return nil
                }
                state.waiter = nil
                return (waiter, state.work, state.timer)
            }
            guard let (waiter, work, timer) = taken else { return }
            timer?.cancel()
            if case .failure = outcome { work?.cancel() }
            waiter.resume(with: outcome)
        }
    }
}
