import Testing

@testable import HealthCodeProjector

@Suite("Projector progress")
struct ProjectorProgressTests {
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
