import AsyncHTTPClient
import Foundation
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodeKafka
import HealthCodeLocalServers
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
        /// People whose decision log does not chain: a change whose old status is not the status the
        /// previous one set, or a last change that is not the current code's status.
        var decisionChainBreaks: [String] = []
        /// People whose stored code (status, validUntil) differs from the independent literal transcription
        /// of docs/POLICY.md (``LiteralPolicy``) over their archived events; checked with `literal`.
        var literalMismatches: [String] = []
        var literalChecks = 0
        /// Where the code census (`OperationsStore.codeCensus()`, kept incrementally) differs from a count of the
        /// stored codes by colour and by their people's stored states' last known area; and people whose code
        /// was counted in another area than their stored state's.
        var censusMismatches: [String] = []
    }

    /// - Parameter literal: also check every `literal`-th person's code (by pseudonym order) against
    ///   ``LiteralPolicy``, which shares no code with the projector's fold and policy (and is slow).
    static func verify(_ backbone: TestBackbone, literal: Int? = nil) async throws -> Verdict {
        try await backbone.withDatabase { client in
            let logger = testLogger()
            var verdict = Verdict()
            var areas = RiskAreaMap()
            var areaEvents: [CloudEvent] = []
            for try await body in try await client.query(
                "SELECT body::text FROM area_event_archive ORDER BY seq",
                logger: logger
            )
            .decode(String.self) {
                let event = try EventDecoder.decode(Array(body.utf8))
                areas.apply(event)
                areaEvents.append(event)
                verdict.archivedAreaEvents += 1
            }
            var folded: [String: PersonState] = [:]
            var archived: [String: [CloudEvent]] = [:]
            for try await (subject, source, id, type, time, recorded, body, arrived) in try await client.query(
                """
                SELECT subject, source, event_id, type, hc_micros(time), hc_micros(recorded_time), body::text,
                       hc_micros(arrived_at)
                FROM event_archive
                """,
                logger: logger
            ).decode((String, String, String, String, Int64, Int64?, String, Int64?).self) {
                let event = try CloudEvent.archived(
                    subject: subject,
                    source: source,
                    id: id,
                    type: type,
                    time: Instant(microsecondsSinceEpoch: time),
                    recordedTime: recorded.map(Instant.init(microsecondsSinceEpoch:)),
                    remainder: body
                )
                // A journey's arrival is kept in its own column (replays select on it), nothing else's.
                var arrival: Int64?
                if case .travel(let travel) = event.payload { arrival = travel.arrivedAt.microsecondsSinceEpoch }
                if arrived != arrival { verdict.stateMismatches.append("archived arrival of \(id)") }
                folded[subject, default: PersonState()].apply(event)
                if literal != nil { archived[subject, default: []].append(event) }
                verdict.archivedPersonEvents += 1
            }
            let literalSubjects = literal.map { step in
                Set(archived.keys.sorted().enumerated().filter { $0.offset % max(step, 1) == 0 }.map(\.element))
            }
            let policy = Policy(ruleSet: backbone.ruleSet)
            var census: [AreaCode?: CodeCensus] = [:]
            for try await (subject, state, decision, evaluatedAt, status, area) in try await client.query(
                """
                SELECT s.subject, s.state::text, c.decision::text, hc_micros(c.evaluated_at), c.status, c.area_code
                FROM person_state s LEFT JOIN person_code c USING (subject)
                """,
                logger: logger
            ).decode((String, String, String?, Int64?, String?, Int32?).self) {
                verdict.people += 1
                let stored = try PersonState(storedJSON: state.utf8)
                if let status = status.flatMap(CodeStatus.init(rawValue:)) {
                    let lastKnown = stored.lastKnownArea
                    census[lastKnown, default: CodeCensus(area: lastKnown)][status] += 1
                    if area != lastKnown?.value { verdict.censusMismatches.append("area of \(subject)") }
                }
                // The projector leaves out what can no longer matter (PersonState.prune): the same history
                // folded at once and pruned at the same horizon holds the same facts. Only the count of events
                // left out may differ: an event whose archive row was lost (a database that went back) after
                // it was left out is folded, and left out, again.
                var expectedState = folded[subject] ?? PersonState()
                if let horizon = stored.prunedBefore { expectedState.prune(before: horizon, for: policy) }
                if try heldFacts(stored) != heldFacts(expectedState) || stored.eventCount < expectedState.eventCount {
                    verdict.stateMismatches.append(subject)
                }
                guard let decision, let evaluatedAt else {
                    verdict.codeMismatches.append(subject)
                    continue
                }
                let code = try CodeDecision(storedJSON: decision.utf8, ruleSet: policy.ruleSet.identity)
                let expected = policy.evaluate(
                    folded[subject] ?? PersonState(),
                    areas: areas,
                    at: Instant(microsecondsSinceEpoch: evaluatedAt)
                )
                if code != expected { verdict.codeMismatches.append(subject) }
                if literalSubjects?.contains(subject) == true {
                    let at = Instant(microsecondsSinceEpoch: evaluatedAt)
                    let literal = LiteralPolicy(events: (archived[subject] ?? []) + areaEvents, at: at, knownAt: at)
                        .decision()
                    if literal.status != code.status || literal.validUntil != code.validUntil {
                        verdict.literalMismatches.append(subject)
                    }
                    verdict.literalChecks += 1
                }
            }
            var previous: (subject: String, status: String)?
            var current: [String: String] = [:]
            for try await (subject, status) in try await client.query(
                "SELECT subject, status FROM person_code",
                logger: logger
            ).decode((String, String).self) {
                current[subject] = status
            }
            func closeChain() {
                if let previous, current[previous.subject] != previous.status {
                    verdict.decisionChainBreaks.append(previous.subject)
                }
            }
            for try await (subject, old, new) in try await client.query(
                "SELECT subject, old_status, new_status FROM decision_log ORDER BY subject, decision_id",
                logger: logger
            ).decode((String, String?, String).self) {
                if previous?.subject != subject {
                    closeChain()
                    if old != nil { verdict.decisionChainBreaks.append(subject) }
                } else if old != previous?.status {
                    verdict.decisionChainBreaks.append(subject)
                }
                previous = (subject, new)
            }
            closeChain()
            verdict.overdueCodes = try await count(
                client,
                "SELECT count(*) FROM person_code WHERE valid_until < now() - interval '10 seconds'"
            )
            verdict.pendingAreaJobs = try await count(client, "SELECT count(*) FROM area_reevaluations")
            verdict.censusMismatches += try await censusMismatches(
                expected: census.values.map { $0 },
                in: client,
                logger: logger
            )
            return verdict
        }
    }

    /// How the census kept by the projector differs from `expected` (a count of the stored codes) and from the
    /// stored codes' colours.
    static func censusMismatches(
        expected: [CodeCensus],
        in client: PostgresClient,
        logger: Logger
    ) async throws -> [String] {
        var mismatches: [String] = []
        let kept = try await OperationsStore(client: client, logger: logger).codeCensus()
        let counted = CodeCensus.fold(
            expected.flatMap { area in CodeStatus.allCases.map { (area: area.area, status: $0, codes: area[$0]) } }
        )
        if kept != counted {
            let keptAreas = Dictionary(kept.map { ($0.area, $0) }, uniquingKeysWith: { first, _ in first })
            let countedAreas = Dictionary(counted.map { ($0.area, $0) }, uniquingKeysWith: { first, _ in first })
            for area in Set(keptAreas.keys).union(countedAreas.keys)
            where keptAreas[area] != countedAreas[area] {
                mismatches.append(
                    "census of area \(area.map(\.description) ?? "unknown"): kept \(String(describing: keptAreas[area])), "
                        + "counted \(String(describing: countedAreas[area]))"
                )
            }
        }
        for try await (status, codes) in try await client.query(
            "SELECT status, count(*)::int8 FROM person_code GROUP BY status",
            logger: logger
        ).decode((String, Int64).self) {
            guard let status = CodeStatus(rawValue: status) else { continue }
            let total = kept.reduce(0) { $0 + $1[status] }
            if total != codes { mismatches.append("census of \(status): kept \(total), person_code \(codes)") }
        }
        return mismatches
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

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(10)))
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
        let verdict = try await ProjectionVerifier.verify(backbone, literal: 1)
        #expect(verdict.literalChecks == subjects.count)
        #expect(
            verdict.literalMismatches.isEmpty,
            "codes differing from the literal policy: \(verdict.literalMismatches.prefix(5))"
        )
        #expect(verdict.archivedPersonEvents == personEvents.count)
        #expect(verdict.archivedAreaEvents == 2)
        #expect(verdict.people == subjects.count)
        #expect(
            verdict.stateMismatches.isEmpty,
            "states differing from the archive: \(verdict.stateMismatches.prefix(5))"
        )
        #expect(verdict.codeMismatches.isEmpty, "codes differing from the policy: \(verdict.codeMismatches.prefix(5))")
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
        #expect(
            verdict.decisionChainBreaks.isEmpty,
            "decision logs out of chain: \(verdict.decisionChainBreaks.prefix(5))"
        )
        #expect(verdict.pendingAreaJobs == 0)
        #expect(verdict.overdueCodes == 0)
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(10)))
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

    /// The batches a projector process has committed, from its `/health`; 0 while it does not answer.
    func committedBatches(metricsPort: Int) async -> Int {
        guard
            let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/health"),
                timeout: .seconds(2)
            ),
            let body = try? await response.body.collect(upTo: 1 << 16),
            let health = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
        else { return 0 }
        let details = health["details"] as? [String: Any] ?? health
        return Int(details["batches"] as? String ?? "") ?? 0
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

        var firstSettings = backbone.projectorSettings
        firstSettings["HC_METRICS_PORT"] = "\(try freePort())"
        var secondSettings = backbone.projectorSettings
        let secondMetricsPort = try freePort()
        secondSettings["HC_METRICS_PORT"] = "\(secondMetricsPort)"
        let first = ProjectorProcess(executable: healthcodeExecutable, settings: firstSettings)
        let second = ProjectorProcess(executable: healthcodeExecutable, settings: secondSettings)
        do {
            try first.start()
            _ = try await waitForApplied(1, in: backbone, timeout: .seconds(60))
            // The second member joins: the group rebalances while the first is mid-stream.
            try second.start()
            let atJoin = try await totalApplied(backbone)
            // Both members work for a while: a join takes a few seconds on Tansu, then half the
            // partitions move to the second, which must have applied batches of them before the first
            // leaves (its /health counts its committed batches).
            let joinDeadline = ContinuousClock.now + .seconds(60)
            var secondBatches = 0
            while secondBatches == 0, ContinuousClock.now < joinDeadline {
                try await Task.sleep(for: .milliseconds(250))
                secondBatches = await committedBatches(metricsPort: secondMetricsPort)
            }
            #expect(secondBatches > 0, "the joining member got partitions and applied batches before the first left")
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
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
        #expect(verdict.pendingAreaJobs == 0)
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(10)))
struct ProjectorOutageTests {
    /// Publishes 30k events to a backbone on private servers, runs a projector in this process, and
    /// calls `disrupt` once a first part is applied; the projector must then finish on its own.
    func survives(
        _ disrupt: @escaping @Sendable (ScratchServers) async throws -> Void
    ) async throws -> (ProjectionVerifier.Verdict, expected: Int) {
        try await ScratchServers.with(root: LocalInfrastructure.repositoryRoot) { try await survives(disrupt, on: $0) }
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
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
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
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
    }
}

/// A flag set once, readable from any task.
final class ManagedFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// A state's stored JSON without its count of events left out (see ProjectionVerifier).
private func heldFacts(_ state: PersonState) throws -> NSDictionary {
    guard var members = try JSONSerialization.jsonObject(with: Data(state.storedJSON())) as? [String: Any] else {
        return [:]
    }
    members["pruned"] = nil
    return members as NSDictionary
}
