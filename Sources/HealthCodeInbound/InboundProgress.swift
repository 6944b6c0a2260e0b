import Synchronization

/// What the ingest processor is doing, for `/health`: whether a session runs, how many restarts it took, the
/// last failure's code (never a payload) and the time of its last processed batch.
public final class InboundProgress: Sendable {
    struct State {
        var running = false
        var restarts = 0
        var lastFailure: String?
        var messages = 0
        var lastBatch: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    public init() {}

    func started() { state.withLock { $0.running = true } }

    func failed(_ code: String) {
        state.withLock {
            $0.running = false
            $0.restarts += 1
            $0.lastFailure = code
        }
    }

    func processed(_ count: Int) {
        state.withLock {
            $0.messages += count
            $0.lastBatch = .now
        }
    }

    /// The health answer: healthy while a session runs.
    public func report() -> (isHealthy: Bool, details: [String: String]) {
        state.withLock { state in
            var details = [
                "status": state.running ? "processing" : "restarting",
                "restarts": "\(state.restarts)",
                "messages": "\(state.messages)",
            ]
            if let failure = state.lastFailure { details["lastFailure"] = failure }
            if let last = state.lastBatch {
                let elapsed = (ContinuousClock.now - last).components
                details["secondsSinceLastBatch"] = "\(elapsed.seconds)"
            }
            return (state.running, details)
        }
    }
}
