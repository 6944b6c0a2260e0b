import Synchronization

/// Bounds the work of one kind in progress: beyond `limit` a request is shed at once (the caller answers
/// 503 with `Retry-After`) instead of queueing without bound. The gateway bounds its ingest requests (and
/// so the bodies held in memory) with one, the query API its holder checks (tens of milliseconds of a
/// core each, on a public endpoint).
public final class Admission: Sendable {
    /// The count in progress and the limit.
    public struct State: Sendable {
        public enum Action: Equatable, Sendable {
            case admit
            case shed
        }

        let limit: Int
        var inFlight = 0

        public init(limit: Int) {
            self.limit = max(limit, 1)
        }

        public mutating func enter() -> Action {
            guard inFlight < limit else { return .shed }
            inFlight += 1
            return .admit
        }

        public mutating func leave() {
            inFlight -= 1
        }
    }

    private let state: Mutex<State>

    /// - Parameter limit: most in progress at once (at least 1).
    public init(limit: Int) {
        state = Mutex(State(limit: limit))
    }

    /// Runs `work` if fewer than the limit run; `nil` if it was shed.
    public func run<Result: Sendable>(_ work: () async throws -> Result) async rethrows -> Result? {
        guard state.withLock({ $0.enter() }) == .admit else { return nil }
        defer { state.withLock { $0.leave() } }
        return try await work()
    }
}
