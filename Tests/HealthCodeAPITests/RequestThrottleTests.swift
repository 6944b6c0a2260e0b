import HealthCodeCore
import HealthCodeHTTP
import Testing

@testable import HealthCodeAPI

/// The bound on holder checks in progress.
@Suite struct HolderCheckAdmissionTests {
    @Test("beyond the limit a check is shed; a finished one frees its place")
    func admission() async {
        var state = Admission.State(limit: 2)
        #expect(state.enter() == .admit)
        #expect(state.enter() == .admit)
        #expect(state.enter() == .shed)
        state.leave()
        #expect(state.enter() == .admit)
        let admission = Admission(limit: 1)
        let inner = await admission.run { await admission.run { 1 } }
        #expect(inner == .some(nil), "a second check while the first runs is shed")
        #expect(await admission.run { 2 } == 2, "and the place is free again afterwards")
    }
}

/// The rate limiter's state machine on its own.
@Suite struct RequestThrottleTests {
    @Test("buckets refill at their rate; full person buckets are forgotten when many accumulate")
    func buckets() {
        var state = RequestThrottle.State(
            platformDefault: RequestRateLimit(requestsPerSecond: 2, burst: 2),
            perPerson: RequestRateLimit(requestsPerSecond: 1, burst: 1),
            sweepAbove: 10
        )
        let start = ContinuousClock.now
        #expect(state.take(platform: "p", limit: nil, person: "a", now: start) == .admit)
        #expect(state.take(platform: "p", limit: nil, person: "b", now: start) == .admit)
        #expect(
            state.take(platform: "p", limit: nil, person: "c", now: start)
                == .reject(retryAfter: .milliseconds(500), scope: "platform")
        )
        // A platform with its own, higher limit is held to that.
        let own = RequestRateLimit(requestsPerSecond: 100, burst: 100)
        #expect(
            state.take(platform: "q", limit: own, person: "a", now: start)
                == .reject(retryAfter: .seconds(1), scope: "person")
        )
        #expect(state.take(platform: "p", limit: nil, person: "a", now: start + .seconds(1)) == .admit)
        for index in 0..<20 {
            _ = state.take(platform: "q", limit: own, person: "person-\(index)", now: start + .seconds(2))
        }
        #expect(state.people.count <= 21)
        _ = state.take(platform: "q", limit: own, person: "late", now: start + .seconds(10))
        #expect(state.people.count <= 11, "refilled buckets were swept")
    }
}
