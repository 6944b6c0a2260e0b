import Foundation
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// `healthcode rules` and `healthcode explain` as an operator and an analyst run them, against a backbone's
/// database.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .timeLimit(.minutes(3)))
struct AnalystCommandTests {
    /// Runs `healthcode arguments…` on `backbone`'s database; its exit status and standard output.
    static func healthcode(_ arguments: [String], on backbone: TestBackbone) async throws -> (Int32, String) {
        var environment = ProcessInfo.processInfo.environment
        environment["HC_PG_HOST"] = LocalInfrastructure.postgresHost
        environment["HC_PG_PORT"] = "\(backbone.postgresPort)"
        environment["HC_PG_DATABASE"] = backbone.database
        let process = Process()
        process.executableURL = healthcodeExecutable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = LocalInfrastructure.repositoryRoot
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let status = await withCheckedContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                continuation.resume(returning: Int32(-1))
            }
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (status, output)
    }

    @Test("an activated rule set is listed and shown; explain names it, answers in text and JSON, and is audited")
    func rulesAndExplain() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let file = LocalInfrastructure.repositoryRoot.appendingPathComponent("projections/rules/reference-v1.json")
        let (activated, activation) = try await Self.healthcode(
            ["rules", "activate", file.path, "--by", "ops-1", "--effective", "2020-01-01T00:00:00Z"],
            on: backbone
        )
        #expect(activated == 0)
        #expect(activation.contains(backbone.ruleSet.contentHash))
        let (_, list) = try await Self.healthcode(["rules", "list"], on: backbone)
        #expect(list.contains("2020-01-01T00:00:00Z\treference-v1\t1.0.0\t\(backbone.ruleSet.contentHash)\tby ops-1"))
        let (_, shown) = try await Self.healthcode(["rules", "show", backbone.ruleSet.contentHash], on: backbone)
        #expect(Data(shown.utf8) == (try Data(contentsOf: file)))
        let (refused, _) = try await Self.healthcode(["rules", "activate", "README.md", "--by", "ops-1"], on: backbone)
        #expect(refused != 0)

        let subject = "c0ffee" + String(repeating: "2", count: 26)
        var test = CloudEvent(
            id: "pcr-1",
            source: "urn:hc:publisher:test-health-bureau",
            subject: subject,
            time: Instant.now() - .seconds(3600),
            payload: .testResult(TestResult(test: .pcr, result: .positive, lab: "lab-1"))
        )
        test.recordedTime = test.time
        try await publish([test], to: backbone)
        try await backbone.runProjector(
            until: { try await count($0, "SELECT count(*) FROM person_code WHERE subject = '\(subject)'") == 1 },
            gracefully: true
        )
        let common = [subject, "--analyst", "analyst-7", "--purpose", "case 19"]
        let (textStatus, text) = try await Self.healthcode(["explain"] + common, on: backbone)
        #expect(textStatus == 0)
        #expect(text.contains(": RED"))
        #expect(text.contains("positive-pcr (red) since"))
        #expect(text.contains("decided by rule set reference-v1 1.0.0 (\(backbone.ruleSet.contentHash))"))
        let (jsonStatus, json) = try await Self.healthcode(["explain"] + common + ["--format", "json"], on: backbone)
        #expect(jsonStatus == 0)
        let answer = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let code = answer?["code"] as? [String: Any]
        #expect(code?["status"] as? String == "red")
        #expect((code?["ruleSet"] as? [String: Any])?["hash"] as? String == backbone.ruleSet.contentHash)
        let (badStatus, _) = try await Self.healthcode(
            ["explain", "not-a-pseudonym"] + common.dropFirst(),
            on: backbone
        )
        #expect(badStatus != 0)
        // --rules: judged by a named rule set (activated, by ID@VERSION or hash) or a file, and named so.
        var milder = try String(contentsOf: file, encoding: .utf8)
        milder.replaceSubrange(milder.range(of: "\"colour\": \"red\"")!, with: "\"colour\": \"yellow\"")
        milder = milder.replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"2.0.0\"")
        let milderFile = FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("milder") + ".json")
        try milder.write(to: milderFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: milderFile) }
        let milderHash = try RuleSet.decode(Array(milder.utf8)).contentHash
        let (_, whatIf) = try await Self.healthcode(["explain"] + common + ["--rules", milderFile.path], on: backbone)
        #expect(whatIf.contains(": YELLOW"))
        #expect(whatIf.contains("decided by rule set reference-v1 2.0.0 (\(milderHash))"))
        let (_, named) = try await Self.healthcode(
            ["explain"] + common + ["--rules", "reference-v1@1.0.0"],
            on: backbone
        )
        #expect(named.contains(": RED") && named.contains(backbone.ruleSet.contentHash))
        let (unknownStatus, _) = try await Self.healthcode(
            ["explain"] + common + ["--rules", "reference-v1@9.9.9"],
            on: backbone
        )
        #expect(unknownStatus != 0)
        // An evidence bundle: written by one command, checked offline by another, tampering found.
        let bundle = FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("evidence") + ".json")
        defer { try? FileManager.default.removeItem(at: bundle) }
        let (made, _) = try await Self.healthcode(["evidence"] + common + ["--output", bundle.path], on: backbone)
        #expect(made == 0)
        let (verifiedStatus, verified) = try await Self.healthcode(["evidence", "verify", bundle.path], on: backbone)
        #expect(verifiedStatus == 0)
        #expect(verified.hasPrefix("verified: \(subject) at "))
        #expect(verified.contains(": RED by rule set reference-v1 1.0.0 (\(backbone.ruleSet.contentHash)); 1 events"))
        let written = try String(contentsOf: bundle, encoding: .utf8)
        try written.replacingOccurrences(of: "\"result\":\"positive\"", with: "\"result\":\"negative\"")
            .write(to: bundle, atomically: true, encoding: .utf8)
        let (tamperedStatus, tampered) = try await Self.healthcode(["evidence", "verify", bundle.path], on: backbone)
        #expect(tamperedStatus == 1)
        #expect(tampered.contains("differs: events[0].sha256 is not the SHA-256 of its event"))
        #expect(tampered.contains("differs: result differs from the re-evaluation"))
        let audited = try await backbone.withDatabase {
            try await count(
                $0,
                """
                SELECT count(*) FROM analyst_audit WHERE subject = '\(subject)'
                AND endpoint IN ('explain-cli', 'evidence-cli') AND analyst_id = 'analyst-7'
                """
            )
        }
        #expect(audited == 6, "every explain that read, and the refused rule set's: audited before reading")
    }
}
