import Synchronization

/// What a projector has achieved lately, for its health endpoint and alerts.
///
/// Operators should be alerted on "not progressing" (messages are waiting and nothing was
/// committed for a while), not on "behind": a projector catching up after a burst is behind but
/// healthy, one stuck on a broken database is not.
public final class ProjectorProgress: Sendable {
    /// The verdict of ``status(stallAfter:)``.
    public struct Status: Sendable, Hashable, Codable {
        /// `progressing`, `idle` (nothing waiting) or `not-progressing`.
        public var state: String
        /// Messages known to wait, over all assigned partitions.
        public var lag: Int64
        /// Seconds since the last committed batch; `nil` before the first.
        public var secondsSinceLastCommit: Double?
        /// Committed batches since start.
        public var batches: Int
        /// Partitions halted because their log was replaced under the stored position
        /// (``ProjectorConfiguration/ReplacedLogAction/halt``), ascending.
        public var replacedLogs: [Int32]

        /// Whether an operator needs to act.
        public var isHealthy: Bool { state != "not-progressing" && state != "log-replaced" }
    }

    private struct State {
        var lastCommit: ContinuousClock.Instant?
        var started = ContinuousClock.now
        var lag: [Int32: Int64] = [:]
        var batches = 0
        var replacedLogs: Set<Int32> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// A batch of `partition` was committed; `lag` messages of it are known to wait.
    public func committed(partition: Int32, lag: Int64) {
        state.withLock {
            $0.lastCommit = .now
            $0.lag[partition] = lag
            $0.batches += 1
        }
    }

    /// The partition is no longer this projector's.
    public func revoked(partition: Int32) {
        state.withLock {
            $0.lag.removeValue(forKey: partition)
            $0.replacedLogs.remove(partition)
        }
    }

    /// The partition's log was replaced under its stored position and it is halted.
    public func halted(replacedLogOf partition: Int32) {
        _ = state.withLock { $0.replacedLogs.insert(partition) }
    }

    /// Not progressing when messages wait and nothing was committed within `stallAfter` (counted from
    /// start before the first commit).
    public func status(stallAfter: Duration) -> Status {
        state.withLock { state in
            let lag = state.lag.values.reduce(0, +)
            let since = ContinuousClock.now - (state.lastCommit ?? state.started)
            let seconds = Double(since.components.seconds) + Double(since.components.attoseconds) / 1e18
            let verdict: String
            if !state.replacedLogs.isEmpty {
                verdict = "log-replaced"
            } else if lag == 0 {
                verdict = "idle"
            } else if since > stallAfter {
                verdict = "not-progressing"
            } else {
                verdict = "progressing"
            }
            return Status(
                state: verdict,
                lag: lag,
                secondsSinceLastCommit: state.lastCommit == nil ? nil : seconds,
                batches: state.batches,
                replacedLogs: state.replacedLogs.sorted()
            )
        }
    }
}
