import HealthCodeCore
import Synchronization

/// Per-publisher token buckets in events per second: a publisher that sends faster than its rate
/// (after a burst) gets 429 with the time until its batch would fit. A publisher registered with
/// its own limit is held to that; every other one to the gateway's default.
final class PublisherRateLimits: Sendable {
    /// The state machine; the mutex around it is held only for arithmetic.
    struct State: Sendable {
        /// What to do with a batch.
        enum Action: Equatable, Sendable {
            case admit
            case reject(retryAfter: Duration)
        }

        let defaultLimit: PublisherRateLimit
        var buckets: [String: TokenBucket] = [:]

        init(eventsPerSecond: Int, burst: Int) {
            defaultLimit = PublisherRateLimit(eventsPerSecond: eventsPerSecond, burstEvents: burst)
        }

        /// Takes `events` tokens from the publisher's bucket, filled at `limit` (`nil`: the default),
        /// or says how long until they exist.
        mutating func take(
            _ events: Int,
            for publisher: String,
            limit: PublisherRateLimit? = nil,
            now: ContinuousClock.Instant
        ) -> Action {
            let limit = limit ?? defaultLimit
            let rate = Double(max(limit.eventsPerSecond, 1))
            let capacity = Double(max(limit.burstEvents, 1))
            var bucket = buckets[publisher] ?? TokenBucket(capacity: capacity, now: now)
            defer { buckets[publisher] = bucket }
            if let wait = bucket.take(Double(events), rate: rate, capacity: capacity, now: now) {
                return .reject(retryAfter: wait)
            }
            return .admit
        }
    }

    private let state: Mutex<State>

    init(eventsPerSecond: Int, burst: Int) {
        state = Mutex(State(eventsPerSecond: eventsPerSecond, burst: burst))
    }

    func take(_ events: Int, for publisher: Publisher) -> State.Action {
        state.withLock { $0.take(events, for: publisher.id, limit: publisher.rateLimit, now: .now) }
    }
}

/// The (source, id) keys of events recently acknowledged by the log, bounded, oldest forgotten
/// first: a re-sent event is answered `duplicate` without producing it again. (Duplicates older
/// than the window, or sent to another gateway instance, reach Kafka and are absorbed by the
/// projector's idempotent archive.)
final class RecentEvents: Sendable {
    struct State: Sendable {
        let capacity: Int
        var keys: Set<String> = []
        var order: [String] = []
        var head = 0

        func contains(_ key: String) -> Bool { keys.contains(key) }

        mutating func insert(_ key: String) {
            guard capacity > 0, keys.insert(key).inserted else { return }
            if order.count < capacity {
                order.append(key)
            } else {
                keys.remove(order[head])
                order[head] = key
                head = (head + 1) % capacity
            }
        }
    }

    private let state: Mutex<State>

    init(capacity: Int) {
        state = Mutex(State(capacity: capacity))
    }

    static func key(source: String, id: String) -> String { source + "\u{0}" + id }

    func contains(_ keys: [String]) -> [Bool] {
        state.withLock { state in keys.map { state.contains($0) } }
    }

    func insert(_ keys: [String]) {
        state.withLock { state in
            for key in keys { state.insert(key) }
        }
    }
}
