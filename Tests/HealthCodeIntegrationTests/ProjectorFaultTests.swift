import Foundation
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodeKafka
import HealthCodePostgres
import HealthCodeTestSupport
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

/// The verifier: recomputes every person's state and code from the archive alone.
enum ProjectionVerifier {
    struct Verdict {
        var archivedPersonEvents = 0
        var archivedAreaEvents = 0
        var people = 0
        var stateMismatches: [String] = []
        var codeMismatches: [String] = []
        var overdueCodes = 0
        var pendingAreaJobs = 0
    }

    static func verify(_ backbone: TestBackbone) async throws -> Verdict {
        try await backbone.withDatabase { client in
            let logger = testLogger()
            var verdict = Verdict()
            var areas = RiskAreaMap()
            for try await body in try await client.query(
                "SELECT body::text FROM area_event_archive ORDER BY seq",
                logger: logger
            )
            .decode(String.self) {
                areas.apply(try EventDecoder.decode(Array(body.utf8)))
                verdict.archivedAreaEvents += 1
            }
            var folded: [String: PersonState] = [:]
            for try await (subject, body) in try await client.query(
                "SELECT subject, body::text FROM event_archive",
                logger: logger
            ).decode((String, String).self) {
                folded[subject, default: PersonState()].apply(try EventDecoder.decode(Array(body.utf8)))
                verdict.archivedPersonEvents += 1
            }
            let policy = Policy(ruleSet: backbone.ruleSet)
            for try await (subject, state, decision, evaluatedAt) in try await client.query(
                """
                SELECT s.subject, s.state::text, c.decision::text, hc_micros(c.evaluated_at)
                FROM person_state s LEFT JOIN person_code c USING (subject)
                """,
                logger: logger
            ).decode((String, String, String?, Int64?).self) {
                verdict.people += 1
                let stored = try PersonState(storedJSON: state.utf8)
                if stored != folded[subject] { verdict.stateMismatches.append(subject) }
                guard let decision, let evaluatedAt else {
                    verdict.codeMismatches.append(subject)
                    continue
                }
                let code = try CodeDecision(storedJSON: decision.utf8)
                let expected = policy.evaluate(
                    folded[subject] ?? PersonState(),
                    areas: areas,
                    at: Instant(microsecondsSinceEpoch: evaluatedAt)
                )
                if code != expected { verdict.codeMismatches.append(subject) }
            }
            verdict.overdueCodes = try await count(
                client,
                "SELECT count(*) FROM person_code WHERE valid_until < now() - interval '10 seconds'"
            )
            verdict.pendingAreaJobs = try await count(client, "SELECT count(*) FROM area_reevaluations")
            return verdict
        }
    }
}

/// Publishes the workload straight to Kafka, as the gateway would have.
func publish(_ events: [CloudEvent], to backbone: TestBackbone) async throws {
    var logger = testLogger()
    logger.logLevel = .error
    var configuration = KafkaProducerConfiguration(bootstrapServers: backbone.topic.bootstrapServers)
    configuration.linger = .milliseconds(20)
    let producer = try KafkaProducer(configuration: configuration, logger: logger)
    try await withServices([producer]) {
        for start in stride(from: 0, to: events.count, by: 5_000) {
            let messages = events[start..<min(start + 5_000, events.count)].map {
                KafkaOutgoingMessage(topic: backbone.topic.topic, key: Array($0.subject.utf8), value: $0.jsonBytes())
            }
            _ = try await producer.send(messages)
        }
    }
}

func totalApplied(_ backbone: TestBackbone) async throws -> Int {
    try await backbone.withDatabase { client in
        try await count(client, "SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets")
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized)
struct ProjectorCrashTests {
    @Test("a projector process SIGKILLed again and again while 200k events arrive applies each exactly once")
    func sigkillLoop() async throws {
        let backbone = try await TestBackbone.make(partitions: 8)
        let workload = ProjectorWorkload(people: 20_000, eventsPerPerson: 10, anchor: Instant.now())
        let subjects = workload.subjects
        var personEvents: [CloudEvent] = []
        for (index, subject) in subjects.enumerated() {
            personEvents.append(contentsOf: workload.events(ofPerson: index, subject: subject))
        }
        let half = personEvents.count / 2
        let firstWave = workload.designations(midway: false) + personEvents[..<half]
        let secondWave = workload.designations(midway: true) + personEvents[half...]
        let total = firstWave.count + secondWave.count
        #expect(personEvents.count >= 200_000)

        let projector = ProjectorProcess(executable: healthcodeExecutable, settings: backbone.projectorSettings)
        async let driver: Void = {
            try await publish(Array(firstWave), to: backbone)
            try await publish(Array(secondWave), to: backbone)
        }()

        var kills = 0
        var progressAtKills: [Int] = []
        while kills < 10 {
            try projector.start()
            try await Task.sleep(for: .milliseconds(Int.random(in: 2_500...6_000)))
            await projector.kill()
            kills += 1
            progressAtKills.append(try await totalApplied(backbone))
        }
        try await driver
        try projector.start()
        let deadline = ContinuousClock.now + .seconds(600)
        while try await totalApplied(backbone) < total {
            guard ContinuousClock.now < deadline else {
                await projector.kill()
                throw TestFailure("projector did not finish in time")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        // Let the re-evaluator finish the designation that arrived midway.
        let jobsDeadline = ContinuousClock.now + .seconds(120)
        while try await backbone.withDatabase({ try await count($0, "SELECT count(*) FROM area_reevaluations") }) > 0 {
            guard ContinuousClock.now < jobsDeadline else { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        await projector.stop()

        // The kills happened mid-stream, not all before or after the work.
        #expect(progressAtKills.contains { $0 > 0 && $0 < total })
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.archivedPersonEvents == personEvents.count)
        #expect(verdict.archivedAreaEvents == 2)
        #expect(verdict.people == subjects.count)
        #expect(
            verdict.stateMismatches.isEmpty,
            "states differing from the archive: \(verdict.stateMismatches.prefix(5))"
        )
        #expect(verdict.codeMismatches.isEmpty, "codes differing from the policy: \(verdict.codeMismatches.prefix(5))")
        #expect(verdict.pendingAreaJobs == 0)
        #expect(verdict.overdueCodes == 0)
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized)
struct ProjectorScaleOutTests {
    /// Waits until at least `target` events are applied; fails after `timeout`.
    func waitForApplied(_ target: Int, in backbone: TestBackbone, timeout: Duration) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while true {
            let applied = try await totalApplied(backbone)
            if applied >= target { return applied }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("only \(applied) of \(target) events applied after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test("a second projector process joins and the first leaves mid-stream: nothing lost or doubled")
    func twoProcessesWithRebalances() async throws {
        let backbone = try await TestBackbone.make(partitions: 8)
        let workload = ProjectorWorkload(people: 12_000, eventsPerPerson: 10, anchor: Instant.now())
        var events = workload.designations(midway: false)
        for (index, subject) in workload.subjects.enumerated() {
            events.append(contentsOf: workload.events(ofPerson: index, subject: subject))
        }
        events += workload.designations(midway: true)
        try await publish(events, to: backbone)
        let total = events.count

        let first = ProjectorProcess(executable: healthcodeExecutable, settings: backbone.projectorSettings)
        let second = ProjectorProcess(executable: healthcodeExecutable, settings: backbone.projectorSettings)
        do {
            try first.start()
            _ = try await waitForApplied(1, in: backbone, timeout: .seconds(60))
            // The second member joins: the group rebalances while the first is mid-stream.
            try second.start()
            let atJoin = try await totalApplied(backbone)
            // Both members work for a while: a join takes a few seconds on Tansu, then half the
            // partitions move to the second.
            try await Task.sleep(for: .seconds(10))
            let atLeave = try await totalApplied(backbone)
            // The first member leaves gracefully (and exits cleanly): its partitions move to the second,
            // which finishes.
            #expect(await first.stop() == 0)
            #expect(atJoin < total && atLeave < total, "both rebalances must happen mid-stream")
            _ = try await waitForApplied(total, in: backbone, timeout: .seconds(120))
            let jobsDeadline = ContinuousClock.now + .seconds(60)
            while try await backbone.withDatabase({ try await count($0, "SELECT count(*) FROM area_reevaluations") })
                > 0
            {
                guard ContinuousClock.now < jobsDeadline else { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(await second.stop() == 0)
        } catch {
            await first.kill()
            await second.kill()
            throw error
        }

        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.archivedPersonEvents == total - 2)
        #expect(verdict.archivedAreaEvents == 2)
        #expect(verdict.people == workload.people)
        #expect(
            verdict.stateMismatches.isEmpty,
            "states differing from the archive: \(verdict.stateMismatches.prefix(5))"
        )
        #expect(verdict.codeMismatches.isEmpty, "codes differing from the policy: \(verdict.codeMismatches.prefix(5))")
        #expect(verdict.pendingAreaJobs == 0)
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized)
struct ProjectorOutageTests {
    /// Publishes 30k events to a backbone on private servers, runs a projector in this process, and
    /// calls `disrupt` once a first part is applied; the projector must then finish on its own.
    func survives(
        _ disrupt: @escaping @Sendable (ScratchServers) async throws -> Void
    ) async throws -> (ProjectionVerifier.Verdict, expected: Int) {
        let infrastructure = try await ScratchServers.start(root: LocalInfrastructure.repositoryRoot)
        do {
            let outcome = try await survives(disrupt, on: infrastructure)
            await infrastructure.stop()
            return outcome
        } catch {
            await infrastructure.stop()
            throw error
        }
    }

    private func survives(
        _ disrupt: @escaping @Sendable (ScratchServers) async throws -> Void,
        on infrastructure: ScratchServers
    ) async throws -> (ProjectionVerifier.Verdict, expected: Int) {
        let backbone = try await TestBackbone.make(
            partitions: 4,
            postgresPort: infrastructure.postgresPort,
            kafkaBootstrapServers: "127.0.0.1:\(infrastructure.kafkaPort)"
        )
        let workload = ProjectorWorkload(people: 3_000, eventsPerPerson: 10, anchor: Instant.now())
        var events = workload.designations(midway: false)
        for (index, subject) in workload.subjects.enumerated() {
            events.append(contentsOf: workload.events(ofPerson: index, subject: subject))
        }
        try await publish(events, to: backbone)
        let total = events.count
        let disrupted = ManagedFlag()
        try await backbone.runProjector(
            until: { client in
                // While the disruption lasts, this probe fails like the projector does: count it as no progress.
                let applied =
                    (try? await count(client, "SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets")) ?? 0
                if applied > 0 && applied < total && !disrupted.isSet {
                    disrupted.set()
                    try await disrupt(infrastructure)
                }
                return applied >= total
            },
            gracefully: true,
            timeout: .seconds(240)
        )
        #expect(disrupted.isSet, "the disruption must happen mid-stream")
        return (try await ProjectionVerifier.verify(backbone), total - 1)
    }

    @Test("PostgreSQL restarted mid-stream: the projector reconnects and resumes, nothing lost or repeated")
    func postgresRestart() async throws {
        let (verdict, expected) = try await survives { infrastructure in
            try await infrastructure.run("restart-pg")
        }
        #expect(verdict.archivedPersonEvents == expected)
        #expect(verdict.stateMismatches.isEmpty)
        #expect(verdict.codeMismatches.isEmpty)
    }

    @Test("broker unreachable mid-stream: the projector waits and resumes without losing its place")
    func brokerFrozen() async throws {
        let (verdict, expected) = try await survives { infrastructure in
            try await infrastructure.run("freeze-kafka")
            try await Task.sleep(for: .seconds(8))
            try await infrastructure.run("thaw-kafka")
        }
        #expect(verdict.archivedPersonEvents == expected)
        #expect(verdict.stateMismatches.isEmpty)
        #expect(verdict.codeMismatches.isEmpty)
    }
}

/// A flag set once, readable from any task.
final class ManagedFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
