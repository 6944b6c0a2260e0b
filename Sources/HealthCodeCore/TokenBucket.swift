/// A token bucket: up to `capacity` tokens, refilled continuously at `rate` tokens a second. The rate
/// limits of the gateway (events per publisher) and of the query API (requests per platform and per
/// person) are dictionaries of these behind a lock.
public struct TokenBucket: Sendable {
    /// Tokens at ``updated``.
    public private(set) var tokens: Double
    public private(set) var updated: ContinuousClock.Instant

    /// A full bucket.
    public init(capacity: Double, now: ContinuousClock.Instant) {
        tokens = capacity
        updated = now
    }

    /// Refills the bucket to `now`, then takes `count` tokens (never more than `capacity`, so that a
    /// request larger than the burst still passes once the bucket is full): `nil` if taken, else how long
    /// until they exist (at most a day).
    public mutating func take(
        _ count: Double,
        rate: Double,
        capacity: Double,
        now: ContinuousClock.Instant
    ) -> Duration? {
        tokens = level(rate: rate, capacity: capacity, now: now)
        updated = now
        let needed = min(count, capacity)
        guard tokens >= needed else {
            return .milliseconds(Int64(min(((needed - tokens) / rate * 1000).rounded(.up), 86_400_000)))
        }
        tokens -= needed
        return nil
    }

    /// The tokens the bucket holds at `now`; a bucket back at `capacity` is as good as none.
    public func level(rate: Double, capacity: Double, now: ContinuousClock.Instant) -> Double {
        let elapsed = now - updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(capacity, tokens + seconds * rate)
    }
}
