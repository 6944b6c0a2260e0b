import Testing

@testable import HealthCodeProjector

@Suite("Projector progress")
struct ProjectorProgressTests {
    typealias State = ProjectorProgress.State
    let start = ContinuousClock.now
    let stall = Duration.seconds(5)
    let unassigned = Duration.seconds(60)

    func state(_ state: State, at offset: Duration) -> String {
        state.status(stallAfter: stall, unassignedAfter: unassigned, now: start + offset).state
    }

    @Test("messages waiting from the start with nothing committed: not progressing after stall-after")
    func stuckSinceStart() {
        var progress = State(started: start)
        #expect(state(progress, at: .seconds(1)) == "idle")
        progress.observed(lag: [0: 600, 1: 400], now: start + .seconds(1))
        #expect(state(progress, at: .seconds(5)) == "progressing")
        let stuck = progress.status(stallAfter: stall, unassignedAfter: unassigned, now: start + .seconds(7))
        #expect(stuck.state == "not-progressing")
        #expect(stuck.lag == 1000)
        #expect(!stuck.isHealthy)
    }

    @Test("after a long idle spell, new messages get stall-after from when they began to wait")
    func idleThenBusy() {
        var progress = State(started: start)
        progress.committed(partition: 0, lag: 0, now: start + .seconds(1))
        progress.observed(lag: [0: 0], now: start + .seconds(100))
        #expect(state(progress, at: .seconds(100)) == "idle")
        progress.observed(lag: [0: 10], now: start + .seconds(101))
        #expect(state(progress, at: .seconds(102)) == "progressing", "it only just began to wait")
        #expect(state(progress, at: .seconds(107)) == "not-progressing")
        progress.committed(partition: 0, lag: 5, now: start + .seconds(107))
        #expect(state(progress, at: .seconds(108)) == "progressing")
    }

    @Test("holding no partition while the topic's messages wait unapplied: no-partitions after its time")
    func noPartitions() {
        var progress = State(started: start)
        progress.unassigned(waiting: 1000, stored: 0, now: start + .seconds(5))
        progress.unassigned(waiting: 1000, stored: 0, now: start + .seconds(50))
        #expect(state(progress, at: .seconds(50)) != "no-partitions")
        let stuck = progress.status(stallAfter: .seconds(3600), unassignedAfter: unassigned, now: start + .seconds(70))
        #expect(stuck.state == "no-partitions")
        #expect(stuck.lag == 1000)
        #expect(stuck.assignedPartitions == 0)
        // Another member applies them (the stored positions move): a spare member is healthy.
        progress.unassigned(waiting: 900, stored: 100, now: start + .seconds(71))
        #expect(state(progress, at: .seconds(72)) != "no-partitions")
        progress.observed(lag: [3: 0], now: start + .seconds(80))
        #expect(state(progress, at: .seconds(200)) == "idle")
    }

    @Test("a re-evaluator failing for stall-after makes the projector unhealthy until it works again")
    func reevaluationFailing() {
        var progress = State(started: start)
        progress.reevaluation(succeeded: false, now: start + .seconds(1))
        progress.reevaluation(succeeded: false, now: start + .seconds(3))
        #expect(state(progress, at: .seconds(4)) == "idle")
        #expect(state(progress, at: .seconds(7)) == "reevaluation-failing")
        progress.reevaluation(succeeded: true, now: start + .seconds(8))
        #expect(state(progress, at: .seconds(9)) == "idle")
    }

    @Test("a partition halted on a replaced log makes the projector unhealthy until it is revoked")
    func replacedLogIsUnhealthy() {
        let progress = ProjectorProgress()
        progress.committed(partition: 0, lag: 0)
        #expect(progress.status(stallAfter: .seconds(30)).state == "idle")
        progress.halted(replacedLogOf: 3)
        let halted = progress.status(stallAfter: .seconds(30))
        #expect(halted.state == "log-replaced")
        #expect(halted.replacedLogs == [3])
        #expect(!halted.isHealthy)
        progress.revoked(partition: 3)
        #expect(progress.status(stallAfter: .seconds(30)).isHealthy)
    }
}
