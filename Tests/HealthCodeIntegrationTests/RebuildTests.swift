import Foundation
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodePostgres
import HealthCodeProjector
import HealthCodeTestSupport
import PostgresNIO
import Synchronization
import Testing

/// `healthcode rebuild`: the projection folded anew from the archive into fresh tables beside the live ones,
/// caught up, verified and switched in.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(6)))
struct RebuildTests {
    /// A random history: the projector workload (journeys, declarations, tests, contacts, retractions, two
    /// designations) and overrides by a review office for one person in ten.
    static func history(people: Int, anchor: Instant = Instant.now()) -> [CloudEvent] {
        let workload = ProjectorWorkload(people: people, eventsPerPerson: 8, anchor: anchor)
        var events = workload.allEvents()
        for (index, subject) in workload.subjects.enumerated() where index % 10 == 3 {
            events.append(
                CloudEvent(
                    id: "review-\(index)",
                    source: "urn:hc:publisher:test-review-office",
                    subject: subject,
                    time: anchor - .seconds(600),
                    recordedTime: anchor - .seconds(600),
                    payload: .review(
                        Review(
                            status: index % 20 == 3 ? .red : .green,
                            validUntil: anchor + .seconds(3 * 86_400),
                            reason: "reviewed",
                            officer: "officer-1"
                        )
                    )
                )
            )
        }
        return events
    }

    /// A rebuild of `backbone`'s database as the operator runs it (the migrating role).
    static func rebuild(
        _ backbone: TestBackbone,
        _ configure: (inout Rebuild.Configuration) -> Void = { _ in },
        rules: String? = nil,
        by: String? = nil,
        switching: Bool = true,
        progress: @escaping @Sendable (Rebuild.Progress) -> Void = { _ in }
    ) async throws -> Rebuild.Summary {
        var configuration = Rebuild.Configuration()
        configuration.workers = 2
        configure(&configuration)
        let settings = configuration
        return try await backbone.withDatabase { client in
            try await Backbone.rebuild(
                postgres: client,
                configuration: settings,
                configured: backbone.ruleSet,
                logger: testLogger()
            )
            .run(rules: rules, activatedBy: by, switching: switching, progress: progress)
        }
    }

    @Test(
        "a rebuild beside a running projector equals the archive's fold; the projector and API go on after the switch"
    )
    func rebuildBesideLiveProjector() async throws {
        let backbone = try await TestBackbone.make(partitions: 4)
        let anchor = Instant.now()
        let events = Self.history(people: 600, anchor: anchor)
        let third = events.count / 3
        let (first, second, last) = (
            Array(events[..<third]), Array(events[third..<(2 * third)]), Array(events[(2 * third)...])
        )
        try await backbone.withRunningBackbone { _, api, probe in
            try await publish(first, to: backbone)
            try await waitForApplied(first.count, backbone)
            // The designations' re-evaluations done too: the live codes are current.
            let deadline = ContinuousClock.now + .seconds(60)
            while try await backbone.withDatabase({ try await count($0, "SELECT count(*) FROM area_reevaluations") })
                > 0
            {
                guard ContinuousClock.now < deadline else { throw TestFailure("re-evaluations pending") }
                try await Task.sleep(for: .milliseconds(50))
            }

            // A quiet rebuild first: every code equals the live one, so the switch logs no change.
            let quiet = try await Self.rebuild(backbone)
            #expect(!quiet.resumed)
            #expect(quiet.decisionsLogged == 0)
            #expect(quiet.verified > 0)
            try await expectSameProjection(live: "", previous: "_previous", backbone)
            try await backbone.withDatabase { client in
                _ = try await Backbone.rebuild(
                    postgres: client,
                    configuration: .init(),
                    configured: backbone.ruleSet,
                    logger: testLogger()
                ).dropPrevious()
            }

            // Then one built ahead, while more people and events arrive: they are the tail its catch-up folds.
            let prepared = try await Self.rebuild(backbone, { $0.chunkEvents = 500 }, switching: false)
            #expect(!prepared.switched)
            try await publish(second, to: backbone)
            try await waitForApplied(first.count + second.count, backbone)
            // Switched while events keep arriving: the last tail is folded with the live tables locked; the
            // projector writes into the switched tables from then on.
            async let arriving: Void = publish(last, to: backbone)
            let busy = try await Self.rebuild(backbone)
            try await arriving
            try await waitForApplied(events.count, backbone)
            #expect(busy.resumed && busy.switched)
            #expect(busy.caughtUp >= Set(second.map(\.subject)).count, "the people of the tail, and any later")

            // After the switch: new events for a new person and an old one reach the switched tables.
            let workload = ProjectorWorkload(people: 600, eventsPerPerson: 8, anchor: anchor)
            let newcomer = "feed" + String(repeating: "0", count: 28)
            let positive = [
                CloudEvent(
                    id: "after-switch-1",
                    source: "urn:hc:publisher:test-bureau",
                    subject: newcomer,
                    time: anchor - .seconds(60),
                    recordedTime: anchor - .seconds(60),
                    payload: .testResult(TestResult(test: .pcr, result: .positive, lab: "lab"))
                ),
                CloudEvent(
                    id: "after-switch-2",
                    source: "urn:hc:publisher:test-bureau",
                    subject: workload.subjects[1],
                    time: anchor - .seconds(60),
                    recordedTime: anchor - .seconds(60),
                    payload: .testResult(TestResult(test: .pcr, result: .positive, lab: "lab"))
                ),
            ]
            try await publish(positive, to: backbone)
            try await waitForApplied(events.count + positive.count, backbone)
            for subject in [newcomer, workload.subjects[1]] {
                let answer = try await HTTP.get("\(api)/v1/people/\(subject)/code")
                #expect(answer.status == 200)
                #expect(answer.json["status"] as? String == "red", "the API reads the switched tables")
            }
            _ = probe
        }
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.people > 600)
        #expect(verdict.stateMismatches.isEmpty, "\(verdict.stateMismatches.prefix(5))")
        #expect(verdict.codeMismatches.isEmpty, "\(verdict.codeMismatches.prefix(5))")
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
        #expect(verdict.decisionChainBreaks.isEmpty, "\(verdict.decisionChainBreaks.prefix(5))")
        try await expectPresencesFromArchive(backbone)
    }

    /// The switch folds its tail at its own instant; a projector transaction that read its clock earlier (it then
    /// waited for the switch's lock) or a projector whose clock is behind the rebuild's folds the next events into
    /// states pruned at a later horizon than its own. What it folds must still be left out as the whole history
    /// pruned at the state's horizon leaves it out (seen once in CI as a state differing from the archive's fold).
    @Test("events folded into rebuilt states by a projector whose clock is behind the rebuild's are pruned alike")
    func projectorBehindTheRebuildsClock() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let now = Instant.now()
        let events = Self.history(people: 40, anchor: now)
        try await publish(events, to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count },
            gracefully: true
        )
        // The rebuild's clock is half an hour ahead: its states are pruned at a horizon half an hour later.
        let summary = try await Self.rebuild(backbone) { configuration in
            configuration.now = { Instant.now() + .seconds(1800) }
        }
        #expect(summary.switched)
        // A close contact that ran out between the projector's horizon and the rebuilt state's, for someone the
        // rebuild folded: the whole history pruned at the state's horizon leaves it out.
        let workload = ProjectorWorkload(people: 40, eventsPerPerson: 8, anchor: now)
        var contact = CloudEvent(
            id: "contact-behind",
            source: "urn:hc:publisher:test-cdc",
            subject: workload.subjects[2],
            time: now - .seconds(14 * 86_400 + 3600 - 900),
            payload: .exposure(Exposure(kind: .closeContact))
        )
        contact.recordedTime = now
        try await publish([contact], to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count + 1 },
            gracefully: true
        )
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.people == 40)
        #expect(verdict.stateMismatches.isEmpty, "\(verdict.stateMismatches.prefix(5))")
        #expect(verdict.codeMismatches.isEmpty, "\(verdict.codeMismatches.prefix(5))")
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
    }

    @Test("a rebuild with another stored rule set decides by it, logs the changed codes and activates it, audited")
    func rebuildWithOtherRules() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let now = Instant.now()
        let subject = "c0ffee" + String(repeating: "3", count: 26)
        var contact = CloudEvent(
            id: "contact-3",
            source: "urn:hc:publisher:test-cdc",
            subject: subject,
            time: now - .seconds(20 * 86_400),
            payload: .exposure(Exposure(kind: .closeContact))
        )
        contact.recordedTime = contact.time
        let events = [contact] + Self.history(people: 50, anchor: now)
        try await publish(events, to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count },
            gracefully: true
        )
        // The longer rule set is stored (effective far ahead, so it decides nothing yet).
        let longer = try ReferenceRules.longer()
        let longerHash = try RuleSet.decode(longer).contentHash
        _ = try await backbone.withDatabase {
            try await RuleSetVersionStore(client: $0, logger: testLogger())
                .activate(
                    body: longer,
                    effectiveFrom: Instant(rfc3339: "2100-01-01T00:00:00Z")!,
                    activatedBy: "ops-store"
                )
        }
        let refused = await #expect(throws: RebuildError.self) {
            try await Self.rebuild(backbone, rules: "sha256:unknown", by: "ops-1")
        }
        #expect(refused?.code == "unknown-rule-set")

        let summary = try await Self.rebuild(backbone, rules: "reference-v1@1.1.0", by: "ops-1")
        #expect(summary.ruleSet?.hash == longerHash)
        #expect(summary.decisionsLogged >= 1)
        try await backbone.withDatabase { client in
            let logger = testLogger()
            let code = try await client.query(
                """
                SELECT c.decision::text, r.hash FROM person_code c JOIN rule_set r ON r.ref = c.rule_set
                WHERE c.subject = \(subject)
                """,
                logger: logger
            ).decode((String, String).self).first { _ in true }
            #expect(code?.0.contains("close-contact") == true, "the 28 days of the rebuild's rules")
            #expect(code?.1 == longerHash)
            let logged = try await count(
                client,
                """
                SELECT count(*) FROM decision_log d JOIN rule_set r ON r.ref = d.rule_set
                WHERE d.subject = '\(subject)' AND d.trigger_source = 'urn:hc:rebuild' AND r.hash = '\(longerHash)'
                  AND d.old_status = 'green' AND d.new_status <> 'green'
                """
            )
            #expect(logged == 1, "the change is in the decision log")
            let activations = try await RuleSetVersionStore(client: client, logger: logger).activations()
            let activation = activations.last
            #expect(activation?.ruleSet.hash == longerHash)
            #expect(activation?.activatedBy == "ops-1")
            #expect(activation.map { $0.effectiveFrom < Instant(rfc3339: "2100-01-01T00:00:00Z")! } == true)
        }
        // A projector started afterwards follows the activation: the verifier's policy is the new one.
        var following = backbone
        following.ruleSet = try RuleSet.decode(longer)
        let verdict = try await ProjectionVerifier.verify(following)
        #expect(verdict.codeMismatches.isEmpty, "\(verdict.codeMismatches.prefix(5))")
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
        #expect(verdict.decisionChainBreaks.isEmpty)
    }

    @Test("a rebuild stopped midway resumes after its last chunk and ends as an uninterrupted one")
    func resumeAfterStop() async throws {
        let backbone = try await TestBackbone.make(partitions: 2)
        let events = Self.history(people: 800)
        try await publish(events, to: backbone)
        // Until the designations' re-evaluations are done too: the live codes are current.
        try await backbone.runProjector(
            until: { client in
                guard try await totalApplied(backbone) >= events.count else { return false }
                return try await count(client, "SELECT count(*) FROM area_reevaluations") == 0
            },
            gracefully: true
        )
        // A `healthcode rebuild` process killed (SIGKILL: the chunk in flight rolls back) once a few chunks are in.
        var environment = ProcessInfo.processInfo.environment
        environment["HC_PG_HOST"] = LocalInfrastructure.postgresHost
        environment["HC_PG_PORT"] = "\(backbone.postgresPort)"
        environment["HC_PG_DATABASE"] = backbone.database
        let process = Process()
        process.executableURL = healthcodeExecutable
        process.arguments = ["rebuild", "--chunk-events", "50", "--workers", "1"]
        process.environment = environment
        process.currentDirectoryURL = LocalInfrastructure.repositoryRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while try await backbone.withDatabase({
            try await count($0, "SELECT coalesce(sum(events), 0)::int8 FROM rebuild_range")
        }) < 1_000 {
            guard ContinuousClock.now < deadline, process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let (done, total) = try await backbone.withDatabase { client in
            (
                try await count(client, "SELECT coalesce(sum(events), 0)::int8 FROM rebuild_range"),
                try await count(client, "SELECT count(*) FROM event_archive")
            )
        }
        #expect(done >= 1_000 && done < total, "stopped midway: \(done) of \(total)")
        let states = try await backbone.withDatabase {
            try await count($0, "SELECT count(*) FROM person_state_rebuild")
        }
        #expect(states > 0)

        let summary = try await Self.rebuild(backbone, { $0.chunkEvents = 300 })
        #expect(summary.resumed)
        #expect(summary.events == total, "every archived event folded exactly once across both runs")
        #expect(summary.decisionsLogged == 0)
        try await expectSameProjection(live: "", previous: "_previous", backbone)
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.stateMismatches.isEmpty && verdict.codeMismatches.isEmpty)
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
    }

    @Test("a rebuilt code that differs from its independent re-evaluation stops the switch")
    func tamperedCodeRefusesSwitch() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let events = Self.history(people: 200)
        try await publish(events, to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count },
            gracefully: true
        )
        // Built and caught up, not switched.
        let prepared = try await backbone.withDatabase { client in
            try await Backbone.rebuild(
                postgres: client,
                configuration: .init(),
                configured: backbone.ruleSet,
                logger: testLogger()
            )
            .run(rules: nil, activatedBy: nil, switching: false)
        }
        #expect(!prepared.switched)
        let tampered = try await backbone.withDatabase { client in
            try await count(
                client,
                """
                WITH one AS (SELECT subject FROM person_code_rebuild WHERE status = 'green' LIMIT 1)
                UPDATE person_code_rebuild c SET status = 'red',
                    decision = replace(c.decision::text, '"green"', '"red"')::json
                FROM one WHERE c.subject = one.subject
                RETURNING 1
                """
            )
        }
        #expect(tampered == 1)
        let refused = await #expect(throws: RebuildError.self) {
            try await Self.rebuild(backbone) { $0.sampleSize = 1_000 }
        }
        #expect(refused?.code == "verification-failed")
        let (previous, unfinished) = try await backbone.withDatabase { client in
            (
                try await count(client, "SELECT count(*) FROM pg_class WHERE relname = 'person_state_previous'"),
                try await count(client, "SELECT count(*) FROM rebuild_progress WHERE phase = 'catching-up'")
            )
        }
        #expect(previous == 0, "nothing switched")
        #expect(unfinished == 1)
        // Given up, the next rebuild starts anew from the archive and switches.
        let (abandoned, _) = try await AnalystCommandTests.healthcode(["rebuild", "abandon"], on: backbone)
        #expect(abandoned == 0)
        let fresh = try await Self.rebuild(backbone)
        #expect(!fresh.resumed && fresh.switched)
    }

    @Test("healthcode rebuild, status and drop-previous as an operator runs them")
    func command() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let events = Self.history(people: 100)
        try await publish(events, to: backbone)
        try await backbone.runProjector(
            until: { _ in try await totalApplied(backbone) >= events.count },
            gracefully: true
        )
        let (_, none) = try await AnalystCommandTests.healthcode(["rebuild", "status"], on: backbone)
        #expect(none.contains("no rebuild recorded"))
        let (status, output) = try await AnalystCommandTests.healthcode(["rebuild"], on: backbone)
        #expect(status == 0)
        #expect(output.contains("switched: 100 people"), "\(output)")
        // The switched tables are the live ones in every respect: indexes, the code-change and census triggers,
        // grants.
        let (indexes, triggers, apiReads, projectorWrites) = try await backbone.withDatabase { client in
            (
                try await count(
                    client,
                    """
                    SELECT count(*) FROM pg_indexes WHERE indexname IN
                        ('person_state_pkey', 'person_code_pkey', 'person_code_due', 'person_presence_area')
                    """
                ),
                try await count(
                    client,
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'person_code'::regclass AND NOT tgisinternal"
                ),
                try await count(
                    client,
                    "SELECT count(*) FROM unnest(ARRAY['person_state', 'person_code', 'person_presence']) t "
                        + "WHERE has_table_privilege('hc_api', t, 'SELECT')"
                ),
                try await count(
                    client,
                    "SELECT count(*) FROM unnest(ARRAY['person_state', 'person_code', 'person_presence']) t "
                        + "WHERE has_table_privilege('hc_projector', t, 'INSERT, UPDATE, DELETE')"
                )
            )
        }
        #expect(indexes == 4)
        // The code-change announcements (0009) and the census's deleted and truncated codes (0018).
        #expect(triggers == 4)
        #expect(apiReads == 3 && projectorWrites == 3)
        let (again, _) = try await AnalystCommandTests.healthcode(["rebuild"], on: backbone)
        #expect(again != 0, "a second rebuild waits for drop-previous")
        let (_, shown) = try await AnalystCommandTests.healthcode(["rebuild", "status"], on: backbone)
        #expect(shown.contains("switched") && shown.contains("previous tables kept"), "\(shown)")
        let (dropped, _) = try await AnalystCommandTests.healthcode(["rebuild", "drop-previous"], on: backbone)
        #expect(dropped == 0)
        let kept = try await backbone.withDatabase {
            try await count($0, "SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_previous'")
        }
        #expect(kept == 0)
        let (twice, _) = try await AnalystCommandTests.healthcode(["rebuild", "drop-previous"], on: backbone)
        #expect(twice != 0)
        let (unattributed, _) = try await AnalystCommandTests.healthcode(
            ["rebuild", "--rules", backbone.ruleSet.contentHash],
            on: backbone
        )
        #expect(unattributed != 0, "--rules needs --by")
    }

    /// Waits until the projector has applied `count` messages.
    func waitForApplied(_ count: Int, _ backbone: TestBackbone) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while try await totalApplied(backbone) < count {
            guard ContinuousClock.now < deadline else { throw TestFailure("the projector did not catch up") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The tables `<table><live>` and `<table><previous>` hold the same people, held facts, codes (status, end,
    /// rule set, decision) and presences.
    func expectSameProjection(live: String, previous: String, _ backbone: TestBackbone) async throws {
        try await backbone.withDatabase { client in
            let differentCodes = try await count(
                client,
                """
                SELECT count(*) FROM person_code\(live) a FULL JOIN person_code\(previous) b USING (subject)
                WHERE a.subject IS NULL OR b.subject IS NULL OR a.status <> b.status
                   OR a.valid_until IS DISTINCT FROM b.valid_until OR a.rule_set <> b.rule_set
                   OR a.decision::text <> b.decision::text
                """
            )
            #expect(differentCodes == 0)
            if differentCodes > 0 {
                for try await row in try await client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT a.subject || ' ' || a.status || ' ' || coalesce(a.valid_until::text, '-') || ' '
                                   || a.evaluated_at::text || ' ' || a.decision::text || ' | ' || b.status || ' '
                                   || coalesce(b.valid_until::text, '-') || ' ' || b.evaluated_at::text || ' '
                                   || b.decision::text
                            FROM person_code\(live) a JOIN person_code\(previous) b USING (subject)
                            WHERE a.decision::text <> b.decision::text LIMIT 3
                            """
                    ),
                    logger: testLogger()
                ).decode(String.self) {
                    print("different code: \(row)")
                }
            }
            let differentPresences = try await count(
                client,
                """
                SELECT count(*) FROM (
                    (SELECT subject, area_code, at FROM person_presence\(live)
                     EXCEPT ALL SELECT subject, area_code, at FROM person_presence\(previous))
                    UNION ALL
                    (SELECT subject, area_code, at FROM person_presence\(previous)
                     EXCEPT ALL SELECT subject, area_code, at FROM person_presence\(live))
                ) d
                """
            )
            #expect(differentPresences == 0)
            var differentStates: [String] = []
            for try await (subject, rebuilt, old) in try await client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT a.subject, a.state::text, b.state::text
                        FROM person_state\(live) a FULL JOIN person_state\(previous) b USING (subject)
                        """
                ),
                logger: testLogger()
            ).decode((String, String?, String?).self) {
                guard let rebuilt, let old else {
                    differentStates.append(subject)
                    continue
                }
                let fresh = try PersonState(storedJSON: Array(rebuilt.utf8))
                var kept = try PersonState(storedJSON: Array(old.utf8))
                // The live state was pruned at its last batch, the rebuilt one at the rebuild: same facts at
                // the later horizon.
                if let horizon = fresh.prunedBefore {
                    kept.prune(before: horizon, for: Policy(ruleSet: backbone.ruleSet))
                }
                if fresh != kept { differentStates.append(subject) }
            }
            #expect(differentStates.isEmpty, "\(differentStates.prefix(5))")
        }
    }

    /// The presence table holds exactly the presences of the archived events.
    func expectPresencesFromArchive(_ backbone: TestBackbone) async throws {
        try await backbone.withDatabase { client in
            var expected: [String: Int] = [:]
            let rows = try await client.query(
                "SELECT subject, source, event_id, type, hc_micros(time), hc_micros(recorded_time), body::text FROM event_archive",
                logger: testLogger()
            )
            for try await (subject, source, id, type, time, recorded, body) in rows.decode(
                (String, String, String, String, Int64, Int64?, String).self
            ) {
                let event = try CloudEvent.archived(
                    subject: subject,
                    source: source,
                    id: id,
                    type: type,
                    time: Instant(microsecondsSinceEpoch: time),
                    recordedTime: recorded.map(Instant.init(microsecondsSinceEpoch:)),
                    remainder: body
                )
                for presence in event.presences {
                    expected["\(subject) \(presence.area.value) \(presence.at.microsecondsSinceEpoch)", default: 0] += 1
                }
            }
            var stored: [String: Int] = [:]
            for try await (subject, area, at) in try await client.query(
                "SELECT subject, area_code, hc_micros(at) FROM person_presence",
                logger: testLogger()
            ).decode((String, Int32, Int64).self) {
                stored["\(subject) \(area) \(at)", default: 0] += 1
            }
            #expect(stored == expected)
        }
    }
}
