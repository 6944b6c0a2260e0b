import Foundation
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodePostgres
import HealthCodeProjector
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// An operator must be able to trust the projector's `/health`: it sees every stall, also one that
/// began before anything was committed.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(4)))
struct ProjectorHealthTests {
    @Test("a projector stuck from its start on locked positions reports not-progressing with the waiting lag")
    func stuckFromStart() async throws {
        let backbone = try await TestBackbone.make(partitions: 2)
        let logger = testLogger()
        let workload = ProjectorWorkload(people: 100, eventsPerPerson: 10, anchor: Instant.now())
        let events = (0..<100).flatMap { workload.events(ofPerson: $0, subject: workload.subjects[$0]) }
        try await backbone.withRunningBackbone { _, _, probe in
            let clock = ContinuousClock()
            let assigned = clock.now + .seconds(60)
            while try await backbone.withDatabase({ try await count($0, "SELECT count(*) FROM consumer_offsets") }) < 2
            {
                guard clock.now < assigned else { throw TestFailure("no partitions assigned") }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(probe.progress.status(stallAfter: .seconds(5)).state == "idle")
            try await backbone.withDatabase { client in
                try await client.withConnection { holder in
                    // Another session holds every stored position before the first event arrives.
                    try await holder.query("BEGIN", logger: logger)
                    try await holder.query("SELECT * FROM consumer_offsets FOR UPDATE", logger: logger)
                    try await publish(events, to: backbone)
                    let deadline = clock.now + .seconds(30)
                    var status = probe.progress.status(stallAfter: .seconds(5))
                    while status.state != "not-progressing", clock.now < deadline {
                        try await Task.sleep(for: .milliseconds(200))
                        status = probe.progress.status(stallAfter: .seconds(5))
                    }
                    #expect(status.state == "not-progressing", "health while every position is locked: \(status)")
                    #expect(status.lag == Int64(events.count), "the lag is every waiting message")
                    #expect(status.batches == 0)
                    #expect(!status.isHealthy)
                    // Held past the transaction deadline (10 s): a statement waiting on the lock is cancelled
                    // by the server (lock_timeout) before its transaction is retried, so the waiting
                    // sessions never pile up beside their retries, one per partition at most.
                    var mostWaiting = 0
                    let held = clock.now + .seconds(14)
                    while clock.now < held {
                        let waiting = try await count(
                            client,
                            """
                            SELECT count(*) FROM pg_stat_activity
                            WHERE datname = current_database() AND wait_event_type = 'Lock'
                            """
                        )
                        mostWaiting = max(mostWaiting, waiting)
                        try await Task.sleep(for: .milliseconds(250))
                    }
                    #expect(mostWaiting >= 1, "the projector did wait on the lock")
                    #expect(mostWaiting <= 2, "sessions waiting on the held positions: \(mostWaiting)")
                    #expect(probe.progress.status(stallAfter: .seconds(5)).state == "not-progressing")
                    try await holder.query("COMMIT", logger: logger)
                }
            }
            try await probe.waitUntilCaughtUp()
            let deadline = clock.now + .seconds(10)
            while probe.progress.status(stallAfter: .seconds(5)).state != "idle", clock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(probe.progress.status(stallAfter: .seconds(5)).state == "idle", "healthy again once it applied all")
        }
    }
}
