import Synchronization

/// What a projector has achieved lately, for its health endpoint and alerts.
///
/// Operators should be alerted on "not progressing" (messages are waiting and nothing was
/// committed for a while), not on "behind": a projector catching up after a burst is behind but
/// healthy, one stuck on a broken database is not. The lag comes from the consumer's own view of
/// each partition's end (its fetches) and the projector's position, observed every second whether
/// or not anything commits, so a projector stuck from its start is seen too.
public final class ProjectorProgress: Sendable {
    /// The verdict of ``status(stallAfter:unassignedAfter:now:)``.
    public struct Status: Sendable, Hashable, Codable {
        /// `progressing`, `idle` (nothing waiting), `not-progressing` (messages wait and nothing was
        /// committed for `stallAfter`), `log-replaced` (a partition halted on a replaced log),
        /// `no-partitions` (none assigned while the topic's messages wait unapplied for
        /// `unassignedAfter`) or `reevaluation-failing` (the re-evaluator failed for `stallAfter`).
        public var state: String
        /// Messages known to wait, over all assigned partitions (or, holding none, on the topic).
        public var lag: Int64
        /// Seconds since the last committed batch; `nil` before the first.
        public var secondsSinceLastCommit: Double?
        /// Committed batches since start.
        public var batches: Int
        /// Partitions halted because their log was replaced under the stored position
        /// (``ProjectorConfiguration/ReplacedLogAction/halt``), ascending.
        public var replacedLogs: [Int32]
        /// Partitions assigned to this projector.
        public var assignedPartitions: Int
        /// Seconds the re-evaluator has been failing; `nil` while it works.
        public var secondsReevaluationFailing: Double?

        /// Whether an operator needs to act.
        public var isHealthy: Bool {
            !["not-progressing", "log-replaced", "no-partitions", "reevaluation-failing"].contains(state)
        }
    }

    /// The state machine; the mutex around it is held only for arithmetic.
    struct State: Sendable {
        let started: ContinuousClock.Instant
        var lastCommit: ContinuousClock.Instant?
        var lag: [Int32: Int64] = [:]
        /// Since when messages wait (the lag last went from none to some).
        var waitingSince: ContinuousClock.Instant?
        var batches = 0
        var replacedLogs: Set<Int32> = []
        /// Holding no partition: the messages waiting on the topic, the sum of the stored positions,
        /// and since when that sum has not moved.
        var unassigned: (waiting: Int64, stored: Int64, since: ContinuousClock.Instant)?
        var reevaluationFailingSince: ContinuousClock.Instant?

        init(started: ContinuousClock.Instant) {
            self.started = started
        }

        mutating func committed(partition: Int32, lag: Int64, now: ContinuousClock.Instant) {
            lastCommit = now
            self.lag[partition] = lag
            batches += 1
            unassigned = nil
            updateWaiting(now: now)
        }

        mutating func observed(lag: [Int32: Int64], now: ContinuousClock.Instant) {
            self.lag = lag
            unassigned = nil
            updateWaiting(now: now)
        }

        mutating func unassigned(waiting: Int64, stored: Int64, now: ContinuousClock.Instant) {
            lag = [:]
            if let previous = unassigned, previous.stored == stored, previous.waiting > 0, waiting > 0 {
                unassigned = (waiting, stored, previous.since)
            } else {
                unassigned = (waiting, stored, now)
            }
            updateWaiting(now: now)
        }

        mutating func revoked(partition: Int32, now: ContinuousClock.Instant) {
            lag[partition] = nil
            replacedLogs.remove(partition)
            updateWaiting(now: now)
        }

        mutating func reevaluation(succeeded: Bool, now: ContinuousClock.Instant) {
            if succeeded {
                reevaluationFailingSince = nil
            } else if reevaluationFailingSince == nil {
                reevaluationFailingSince = now
            }
        }

        private mutating func updateWaiting(now: ContinuousClock.Instant) {
            if totalLag == 0 {
                waitingSince = nil
            } else if waitingSince == nil {
                waitingSince = now
            }
        }

        var totalLag: Int64 { unassigned?.waiting ?? lag.values.reduce(0, +) }

        /// Whether no partition has been held, with the topic's messages waiting unapplied, for longer
        /// than `limit`.
        func isWaitingUnassigned(longerThan limit: Duration, now: ContinuousClock.Instant) -> Bool {
            guard let unassigned, unassigned.waiting > 0 else { return false }
            return now - unassigned.since > limit
        }

        func status(stallAfter: Duration, unassignedAfter: Duration, now: ContinuousClock.Instant) -> Status {
            let lag = totalLag
            let verdict: String
            if !replacedLogs.isEmpty {
                verdict = "log-replaced"
            } else if isWaitingUnassigned(longerThan: unassignedAfter, now: now) {
                verdict = "no-partitions"
            } else if let failing = reevaluationFailingSince, now - failing > stallAfter {
                verdict = "reevaluation-failing"
            } else if lag == 0 {
                verdict = "idle"
            } else if now - max(lastCommit ?? started, waitingSince ?? started) > stallAfter {
                verdict = "not-progressing"
            } else {
                verdict = "progressing"
            }
            return Status(
                state: verdict,
                lag: lag,
                secondsSinceLastCommit: lastCommit.map { Self.seconds(now - $0) },
                batches: batches,
                replacedLogs: replacedLogs.sorted(),
                assignedPartitions: unassigned == nil ? self.lag.count : 0,
                secondsReevaluationFailing: reevaluationFailingSince.map { Self.seconds(now - $0) }
            )
        }

        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
    }

    private let state: Mutex<State>

    public init() {
        state = Mutex(State(started: .now))
    }

    /// A batch of `partition` was committed; `lag` messages of it are known to wait.
    public func committed(partition: Int32, lag: Int64) {
        state.withLock { $0.committed(partition: partition, lag: lag, now: .now) }
    }

    /// The messages waiting in each assigned partition, as the consumer sees the partitions' ends.
    public func observed(lag: [Int32: Int64]) {
        state.withLock { $0.observed(lag: lag, now: .now) }
    }

    /// The projector holds no partition; `waiting` messages of the topic are not applied yet, and the
    /// stored positions add up to `stored` (unmoving: nobody applies them).
    public func unassigned(waiting: Int64, stored: Int64) {
        state.withLock { $0.unassigned(waiting: waiting, stored: stored, now: .now) }
    }

    /// Whether the projector has held no partition, with the topic's messages waiting unapplied, for
    /// longer than `limit` (`/health` says `no-partitions` then).
    public func isWaitingUnassigned(longerThan limit: Duration) -> Bool {
        state.withLock { $0.isWaitingUnassigned(longerThan: limit, now: .now) }
    }

    /// The partition is no longer this projector's.
    public func revoked(partition: Int32) {
        state.withLock { $0.revoked(partition: partition, now: .now) }
    }

    /// The partition's log was replaced under its stored position and it is halted.
    public func halted(replacedLogOf partition: Int32) {
        _ = state.withLock { $0.replacedLogs.insert(partition) }
    }

    /// A re-evaluation transaction (due codes or a designation job) succeeded or failed.
    public func reevaluation(succeeded: Bool) {
        state.withLock { $0.reevaluation(succeeded: succeeded, now: .now) }
    }

    /// Not progressing when messages wait and nothing was committed within `stallAfter` (counted from
    /// start, or from when messages began to wait, whichever is later); no partitions when none is held
    /// while the topic's messages wait unapplied for `unassignedAfter`.
    public func status(stallAfter: Duration, unassignedAfter: Duration = .seconds(60)) -> Status {
        state.withLock { $0.status(stallAfter: stallAfter, unassignedAfter: unassignedAfter, now: .now) }
    }
}
