import Dispatch
import Foundation

/// Threads for librdkafka's blocking calls, which must never run on Swift's cooperative pool.
enum BlockingThread {
    /// Starts a dedicated thread named `name` running `body`.
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.start()
    }

    /// Runs the blocking `body` on a new thread and returns its result without blocking the caller's thread.
    static func run<Result: Sendable>(
        name: String,
        _ body: @escaping @Sendable () throws(KafkaError) -> Result
    ) async throws(KafkaError) -> Result {
        let outcome: Swift.Result<Result, KafkaError> = await withUnsafeContinuation { continuation in
            start(name: name) {
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try outcome.get()
    }
}

/// Where a dedicated thread waits for work. A signal sent while the thread is not waiting is kept, so
/// wake-ups are never lost; callers re-check their state after every wake-up.
final class ThreadParker: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)

    /// Blocks the calling (dedicated) thread until ``unpark()``.
    func park() {
        semaphore.wait()
    }

    /// Blocks the calling (dedicated) thread until ``unpark()`` or `timeout`; `false` if it timed out.
    func park(timeout: Duration) -> Bool {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(clamping: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        return semaphore.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success
    }

    /// Wakes the parked thread, or the next ``park()``.
    func unpark() {
        semaphore.signal()
    }
}
