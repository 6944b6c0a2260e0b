import Foundation
import HealthCodeBenchmarks
import HealthCodeLocalServers
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Synchronization
import Testing

/// The README's run command as a new user meets it: `healthcode up` (what `scripts/up` executes once
/// the servers run), the same binary and code path, non-interactively with `--exit-after-summary`.
/// Each run gets its own database, topic, group, ports and key files, so it starts as on a fresh
/// machine and leaves the shared local servers' other users alone.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(15)))
struct RunCommandTests {
    /// What one `healthcode up --exit-after-summary` printed and left behind.
    struct Run {
        var status: Int32
        var output: String
        /// From the summary: events accepted of events published, and the 429 and 503 answers.
        var accepted: Int
        var published: Int
        var rateLimited: Int
        var unavailable: Int
        /// Rows in the test database after the run: every event the projector applied.
        var archived: Int
        var codes: Int
        /// From the interrupt (Ctrl-C) to the process's end, if it was interrupted and ended.
        var stoppedIn: Duration?
    }

    /// Runs `healthcode up --exit-after-summary arguments` on a database and topic of its own (or
    /// `backbone`'s). With `interruptAfter`, runs it serving (no `--exit-after-summary`) and sends
    /// SIGINT (Ctrl-C) that long after the gateway first listens; it must end within 15 s of that.
    static func run(
        _ arguments: [String],
        backbone given: TestBackbone? = nil,
        interruptAfter: Duration? = nil,
        beforeInterrupt: @escaping @Sendable () async throws -> Void = {},
        timeout: Duration = .seconds(600)
    ) async throws -> Run {
        let backbone: TestBackbone
        if let given { backbone = given } else { backbone = try await TestBackbone.make(partitions: 8) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            LocalInfrastructure.uniqueName("hc_up")
        )
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let gatewayPort = try freePort()
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in [
            "HC_KAFKA_BOOTSTRAP": backbone.topic.bootstrapServers.joined(separator: ","),
            "HC_TOPIC": backbone.topic.topic,
            "HC_PROJECTOR_GROUP": backbone.group,
            "HC_PG_HOST": LocalInfrastructure.postgresHost,
            "HC_PG_PORT": "\(backbone.postgresPort)",
            "HC_PG_DATABASE": backbone.database,
            "HC_GATEWAY_PORT": "\(gatewayPort)",
            "HC_API_PORT": "\(try freePort())",
            "HC_METRICS_PORT": "\(try freePort())",
            // Files a first run creates, as on a fresh clone.
            "HC_PSEUDONYM_KEY_FILE": scratch.appendingPathComponent("pseudonym.key").path,
            "HC_CODE_SIGNING_KEYS_DIR": scratch.appendingPathComponent("code-signing-keys").path,
        ] {
            environment[name] = value
        }
        environment["HC_PSEUDONYM_KEY"] = nil
        let outputFile = scratch.appendingPathComponent("output.txt")
        FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: outputFile)
        defer { try? output.close() }

        let process = Process()
        process.executableURL = healthcodeExecutable
        process.arguments = ["up"] + (interruptAfter == nil ? ["--exit-after-summary"] : []) + arguments
        process.environment = environment
        process.currentDirectoryURL = LocalInfrastructure.repositoryRoot
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let interrupted = InterruptInstant()
        let status = try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
                    do {
                        try process.run()
                    } catch {
                        process.terminationHandler = nil
                        continuation.resume(returning: -1)
                    }
                }
            }
            group.addTask {
                guard let interruptAfter else {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                while !isListening(port: gatewayPort) {
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await Task.sleep(for: interruptAfter)
                try await beforeInterrupt()
                interrupted.set(ContinuousClock.now)
                process.interrupt()
                try await Task.sleep(for: .seconds(15))
                return nil
            }
            let first = try await group.next()!
            if first != nil, let sent = interrupted.get() { interrupted.stopped(after: ContinuousClock.now - sent) }
            if first == nil {
                process.interrupt()
                try await Task.sleep(for: .seconds(10))
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            group.cancelAll()
            return first ?? -2
        }
        let text = String(decoding: try Data(contentsOf: outputFile), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: "\n")
        // Not counted after an interrupted run (a test may have stopped the database): (-1, -1).
        let (archived, codes) =
            interruptAfter != nil
            ? (-1, -1)
            : (try? await backbone.withDatabase { client in
                var counts: (Int, Int) = (0, 0)
                let rows = try await client.query(
                    """
                    SELECT (SELECT count(*) FROM event_archive) + (SELECT count(*) FROM area_event_archive),
                        (SELECT count(*) FROM person_code)
                    """,
                    logger: testLogger()
                )
                for try await (archived, codes) in rows.decode((Int, Int).self) { counts = (archived, codes) }
                return counts
            }) ?? (-1, -1)
        func number(after prefix: String, in line: Substring) -> Int? {
            guard let range = line.range(of: prefix) else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        let lines = text.split(separator: "\n")
        let published = lines.first { $0.hasPrefix("published ") }
        let heldBack = lines.first { $0.hasPrefix("held back ") }
        return Run(
            status: status,
            output: text,
            accepted: published.flatMap { number(after: "published  ", in: $0) } ?? -1,
            published: published.flatMap { number(after: " of ", in: $0) } ?? -1,
            rateLimited: heldBack.flatMap { number(after: "held back  ", in: $0) } ?? -1,
            unavailable: heldBack.flatMap { number(after: "(429), ", in: $0) } ?? -1,
            archived: archived,
            codes: codes,
            stoppedIn: interrupted.stoppedIn
        )
    }

    /// When the run was interrupted, and how long it then took to end.
    final class InterruptInstant: Sendable {
        private let state = Mutex<(sent: ContinuousClock.Instant?, stoppedIn: Duration?)>((nil, nil))
        func set(_ instant: ContinuousClock.Instant) { state.withLock { $0.sent = instant } }
        func get() -> ContinuousClock.Instant? { state.withLock { $0.sent } }
        func stopped(after duration: Duration) { state.withLock { $0.stoppedIn = duration } }
        var stoppedIn: Duration? { state.withLock { $0.stoppedIn } }
    }

    /// The last lines of the output, for a failure message.
    static func tail(_ run: Run) -> String {
        run.output.split(separator: "\n").suffix(25).joined(separator: "\n")
    }

    @Test("healthcode up with the default settings and demo size prints its summary with every event projected")
    func defaultRun() async throws {
        let run = try await Self.run([])
        #expect(run.status == 0, "exit status; output ends:\n\(Self.tail(run))")
        #expect(run.output.contains("── HealthCode demo"), "no summary; output ends:\n\(Self.tail(run))")
        // 100 000 people publish about two events each, plus the designations.
        #expect(run.published > 200_000)
        #expect(run.accepted == run.published, "every demo event accepted")
        #expect(run.archived == run.published, "every accepted event projected")
        #expect(run.codes == 100_000)
        #expect(!run.output.contains(" error "), "no error lines; output ends:\n\(Self.tail(run))")
        #expect(run.output.contains("demo done; stopping"))
    }

    @Test("Ctrl-C a second after start, then start again: the second run loads and projects everything")
    func interruptedThenAgain() async throws {
        let backbone = try await TestBackbone.make(partitions: 8)
        // No group to join: Ctrl-C before anything was assigned cannot leave a wedged group behind.
        let interrupted = try await Self.run(["--demo-people", "0"], backbone: backbone, interruptAfter: .seconds(1))
        #expect(interrupted.status == 0, "Ctrl-C stops it cleanly and in time; output ends:\n\(Self.tail(interrupted))")
        #expect(!interrupted.output.contains(" error "), "no error lines; output ends:\n\(Self.tail(interrupted))")
        let again = try await Self.run(["--demo-people", "2000"], backbone: backbone, timeout: .seconds(300))
        #expect(again.status == 0, "exit status; output ends:\n\(Self.tail(again))")
        #expect(again.accepted == again.published && again.published > 4_000)
        #expect(again.archived == again.published, "every accepted event projected")
        // The first start activated the configured rule set; the second kept it (one activation, by up).
        let activations = try await backbone.withDatabase {
            try await RuleSetVersionStore(client: $0, logger: testLogger()).activations()
        }
        #expect(activations.map(\.activatedBy) == ["healthcode up"])
        #expect(activations.first?.ruleSet == backbone.ruleSet.identity)
    }

    @Test("Ctrl-C with PostgreSQL and the broker both gone ends every service within the grace period")
    func boundedShutdown() async throws {
        let run = try await ScratchServers.with(root: LocalInfrastructure.repositoryRoot) { servers in
            let backbone = try await TestBackbone.make(
                partitions: 4,
                postgresPort: servers.postgresPort,
                kafkaBootstrapServers: servers.kafkaBootstrapServers
            )
            return try await Self.run(
                ["--demo-people", "0", "--shutdown-grace-seconds", "5"],
                backbone: backbone,
                interruptAfter: .seconds(3),
                beforeInterrupt: {
                    try await servers.run("freeze-kafka")
                    try await servers.run("stop-pg")
                    try await Task.sleep(for: .seconds(2))
                }
            )
        }
        let stoppedIn = try #require(run.stoppedIn, "it ended on Ctrl-C; output ends:\n\(Self.tail(run))")
        #expect(stoppedIn < .seconds(5 + 4), "stopped \(stoppedIn) after Ctrl-C with a 5 s grace period")
    }

    @Test("at a publisher rate the load exceeds, the demo waits out every 429 and still loads everything")
    func rateLimitedRun() async throws {
        // 3 000 people publish about 6 000 events through six publishers; at 300 events/s each with
        // a burst of one 500-event batch, most batches meet a 429 first.
        let run = try await Self.run([
            "--demo-people", "3000", "--demo-publisher-rate", "300", "--demo-publisher-burst", "500",
        ])
        #expect(run.status == 0, "exit status; output ends:\n\(Self.tail(run))")
        #expect(run.rateLimited >= 5, "the gateway answered 429 during the load: \(run.rateLimited)")
        #expect(run.output.contains("held back by the gateway"), "the progress line shows the wait")
        #expect(run.published > 5_000)
        #expect(run.accepted == run.published, "every demo event accepted")
        #expect(run.archived == run.published, "every accepted event projected")
        #expect(run.codes == 3_000)
        #expect(!run.output.contains(" error "), "no error lines; output ends:\n\(Self.tail(run))")
    }
}
