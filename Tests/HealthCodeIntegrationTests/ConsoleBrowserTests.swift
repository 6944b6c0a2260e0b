import Foundation
import HealthCodeAPI
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// The web console in a real browser: headless Chromium (Debian's), driven by playwright (`scripts/bootstrap.sh`
/// installs both), against a running backbone with a demo population, a red person with a retracted event, and
/// a held rule set. Every page at 1280 and 390 pixels: loads without console errors (a CSP violation is one),
/// shows what it should, every control reachable by Tab and labelled, no page wider than the screen; the
/// analyst signs in through the form, approves the held change by keyboard and signs out. Screenshots of each
/// page at both widths go to `.build/artifacts/console/`.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(6)))
struct ConsoleBrowserTests {
    static let chromium = "/usr/bin/chromium"
    static let artifacts = LocalInfrastructure.repositoryRoot.appendingPathComponent(".build/artifacts/console")

    @Test("every console page in Chromium at 1280 and 390 px: content, keyboard, no errors; sign-in to approval")
    func consoleInChromium() async throws {
        let python = LocalInfrastructure.repositoryRoot.appendingPathComponent(".local/venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: Self.chromium),
            FileManager.default.isExecutableFile(atPath: python.path)
        else {
            Issue.record("Chromium (\(Self.chromium)) or the venv's python is missing: run scripts/bootstrap.sh")
            return
        }
        try FileManager.default.createDirectory(at: Self.artifacts, withIntermediateDirectories: true)
        let backbone = try await TestBackbone.make(partitions: 2)
        let anchor = Instant.now()
        // The demo population: journeys, declarations, tests, contacts, retractions, designations.
        var events = ProjectorWorkload(people: 300, eventsPerPerson: 8, anchor: anchor).allEvents()
        let red = "c0ffee" + String(repeating: "5", count: 26)
        events += [
            CloudEvent(
                id: "pcr-1",
                source: "urn:hc:publisher:test-bureau",
                subject: red,
                time: anchor - .seconds(86_400),
                recordedTime: anchor - .seconds(86_000),
                payload: .testResult(TestResult(test: .pcr, result: .positive, lab: "LAB-1"))
            ),
            CloudEvent(
                id: "declaration-<1>",
                source: "urn:hc:publisher:test-residents",
                subject: red,
                time: anchor - .seconds(90_000),
                recordedTime: anchor - .seconds(90_000),
                payload: .declaration(Declaration(symptoms: [.cough], temperatureCelsius: nil, location: nil))
            ),
            CloudEvent(
                id: "retract-1",
                source: "urn:hc:publisher:test-residents",
                subject: red,
                time: anchor - .seconds(80_000),
                recordedTime: anchor - .seconds(80_000),
                payload: .retraction(Retraction(retracts: "declaration-<1>", reason: "wrong person"))
            ),
        ]
        let analystKey = AnalystAccess.generateKey()
        let longer = try ReferenceRules.longer(version: "1.2.0")
        var impact = ImpactReport()
        impact.record(red, area: AreaCode("420106"), from: .green, to: .red)
        impact.record(String(repeating: "0", count: 32), area: nil, from: .green, to: .green)
        let held = try await backbone.withDatabase { client in
            try await AnalystStore(client: client, logger: testLogger())
                .add(id: "browser-analyst", apiKeySHA256: AnalystAccess.hash(analystKey), mayApprove: true)
            return try await HeldChangeStore(client: client, logger: testLogger()).hold(
                .ruleSet,
                body: longer,
                effectiveFrom: Instant(rfc3339: "2100-01-01T00:00:00Z"),
                impact: impact,
                threshold: 0,
                requestedBy: "ops-1"
            )
        }

        try await backbone.withRunningBackbone { _, api, probe in
            try await publish(events, to: backbone)
            try await probe.waitUntilCaughtUp()
            let request: [String: Any] = [
                "base": api, "key": analystKey, "purpose": "browser test of the console", "subject": red,
                "proposal": held, "artifacts": Self.artifacts.path, "chromium": Self.chromium,
            ]
            let report = try Self.runBrowser(python: python, request: request)
            let pages = try #require(report["pages"] as? [[String: Any]])
            #expect(pages.count == 10, "5 pages at 2 widths")
            for page in pages {
                let name = "\(page["page"] ?? "?") at \(page["width"] ?? "?")"
                #expect(page["status"] as? Int == 200, "\(name)")
                #expect(
                    (page["consoleErrors"] as? [String])?.isEmpty == true,
                    "\(name): \(page["consoleErrors"] ?? "")"
                )
                #expect(
                    (page["unreached"] as? [String])?.isEmpty == true,
                    "\(name): not reached by Tab: \(page["unreached"] ?? "")"
                )
                #expect((page["controls"] as? Int ?? 0) > 0, "\(name)")
                #expect(
                    (page["unlabelled"] as? [String])?.isEmpty == true,
                    "\(name): unlabelled \(page["unlabelled"] ?? "")"
                )
                #expect(
                    page["horizontalOverflow"] as? Bool == false,
                    "\(name) is wider than the screen: \(page["overflowing"] ?? "")"
                )
                let screenshot = try #require(page["screenshot"] as? String)
                #expect(((try? FileManager.default.attributesOfItem(atPath: screenshot)[.size]) as? Int ?? 0) > 10_000)
            }
            func text(_ name: String) -> String {
                pages.first { $0["page"] as? String == name && $0["width"] as? String == "wide" }?["text"] as? String
                    ?? ""
            }
            // The red person's timeline names its positive test and the rule that fired; the retraction shows.
            let (rulesFired, counts) = try await backbone.withDatabase { client in
                let decision = try await client.query(
                    "SELECT decision::text FROM person_code WHERE subject = \(red)",
                    logger: testLogger()
                ).decode(String.self).first { _ in true }
                let code = try CodeDecision(
                    storedJSON: Array(try #require(decision).utf8),
                    ruleSet: backbone.ruleSet.identity
                )
                var counts: [String: Int] = [:]
                for try await (status, count) in try await client.query(
                    "SELECT status, count(*) FROM person_code GROUP BY status",
                    logger: testLogger()
                ).decode((String, Int64).self) {
                    counts[status] = Int(count)
                }
                return (code.reasons.map(\.rule), counts)
            }
            #expect(!rulesFired.isEmpty)
            let person = text("person")
            #expect(person.contains("red"))
            #expect(person.contains("test-result"))
            #expect(person.contains("pcr-1"))
            for rule in rulesFired { #expect(person.contains(rule), "the rule \(rule)") }
            #expect(person.contains("retracted"))
            // The dashboard's counts are the API's (the codes it serves).
            let dashboard = try #require(pages.first { $0["page"] as? String == "dashboard" })
            let shown = try #require(dashboard["codes"] as? [String: String])
            func number(_ text: String?) -> Int? { text.flatMap { Int($0.replacingOccurrences(of: ",", with: "")) } }
            for status in ["green", "yellow", "red"] {
                #expect(number(shown[status]) == counts[status, default: 0], "\(status)")
            }
            #expect(number(shown["total"]) == counts.values.reduce(0, +))
            #expect(counts.values.reduce(0, +) > 300)
            #expect(
                text("dashboard").contains("urn:hc:publisher:test-bureau") || text("dashboard").contains("test-bureau")
            )
            #expect(text("proposal").contains("reference-v1@1.2.0"))
            #expect(text("proposal").contains("420106"))
            // Nothing but the HttpOnly session cookie: no key or token in the page's storage.
            let storage = try #require(report["browserStorage"] as? [Any])
            #expect(storage.count == 3 && storage[0] as? Int == 0 && storage[1] as? Int == 0)
            #expect(storage.last as? String == "", "the session cookie is HttpOnly")
            // Approved by keyboard, recorded as the analyst, through the API's grants.
            let approval = try #require(report["approval"] as? [String: Any])
            #expect((approval["text"] as? String)?.contains("Approved.") == true)
            let decided = try await backbone.withDatabase { client in
                try await client.query(
                    "SELECT status, decided_by FROM held_change WHERE held_id = \(held)",
                    logger: testLogger()
                ).decode((String, String?).self).first { _ in true }
            }
            #expect(decided?.0 == "approved")
            #expect(decided?.1 == "browser-analyst")
            let activation = try await backbone.withDatabase { client in
                try await RuleSetVersionStore(client: client, logger: testLogger()).activations().last
            }
            #expect(activation?.ruleSet.version == "1.2.0", "the approval activated the held rule set")
            #expect(activation?.activatedBy == "ops-1, approved by browser-analyst (held change #\(held))")
            let afterSignOut = try #require(report["afterSignOut"] as? [String: Any])
            #expect((afterSignOut["url"] as? String)?.contains("/console/sign-in") == true)
            // Every read of the person was audited with the declared purpose.
            let audited = try await backbone.withDatabase { client in
                try await count(
                    client,
                    """
                    SELECT count(*) FROM analyst_audit WHERE subject = '\(red)' AND analyst_id = 'browser-analyst'
                      AND purpose = 'browser test of the console' AND endpoint = 'explain'
                    """
                )
            }
            #expect(audited == 2, "one read per width")
        }
    }

    /// Runs Tests/browser/console_check.py with `request` on stdin; its JSON report.
    static func runBrowser(python: URL, request: [String: Any]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = python
        process.arguments = [
            LocalInfrastructure.repositoryRoot.appendingPathComponent("Tests/browser/console_check.py").path
        ]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: request))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problems = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let report = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw TestFailure("the browser run failed (\(process.terminationStatus)): \(problems.suffix(3000))")
        }
        return report
    }
}
