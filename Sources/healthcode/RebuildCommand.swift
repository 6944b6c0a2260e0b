import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeProjector
import Logging
import Synchronization

/// `healthcode rebuild [--rules ID --by NAME]`, `rebuild status`, `rebuild drop-previous`: a blue/green rebuild
/// of the projection from the archive (``Rebuild``).
struct RebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild person states, codes and presences from the archive beside the live ones, then switch.",
        subcommands: [Run.self, Status.self, DropPrevious.self, Abandon.self],
        defaultSubcommand: Run.self
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Build, catch up, verify and switch; rerun after a stop to resume."
        )
        @Option(help: "A stored rule set (its hash sha256:… or id@version) to decide with; activated by the switch.")
        var rules: String?
        @Option(help: "Who activates --rules (recorded with the activation).")
        var by: String?
        @Option(help: "Tasks folding in parallel (default: the processors).")
        var workers = Rebuild.Configuration().workers
        @Option(help: "Codes re-evaluated independently before the switch.")
        var sample = Rebuild.Configuration().sampleSize
        @Option(help: "Archive rows per transaction of the bulk build (each one a checkpoint to resume from).")
        var chunkEvents = Rebuild.Configuration().chunkEvents
        @Flag(
            help: "Build and catch up, but do not switch: a later `healthcode rebuild` catches up again and switches."
        )
        var noSwitch = false
        @OptionGroup var postgres: PostgresOptions

        func validate() throws {
            guard workers > 0 else { throw ValidationError("--workers must be 1 or more") }
            guard sample >= 0 else { throw ValidationError("--sample must be 0 or more") }
            guard chunkEvents > 0 else { throw ValidationError("--chunk-events must be 1 or more") }
            if rules != nil, by?.isEmpty != false { throw ValidationError("--rules needs --by NAME: who activates it") }
        }

        func run() async throws {
            var configuration = Rebuild.Configuration()
            configuration.workers = workers
            configuration.sampleSize = sample
            configuration.chunkEvents = chunkEvents
            let bar = RebuildProgressBar()
            let summary = try await RebuildCommand.withRebuild(postgres, configuration) {
                try await $0.run(rules: rules, activatedBy: by, switching: !noSwitch) { bar.update($0) }
            }
            bar.finish()
            guard summary.switched else {
                print(
                    "rebuild \(summary.rebuild) built and caught up, not switched: \(summary.people) people, "
                        + "\(summary.events) events; run `healthcode rebuild` again to switch"
                )
                return
            }
            print(
                "rebuild \(summary.rebuild) switched\(summary.resumed ? " (resumed)" : ""): \(summary.people) people, "
                    + "\(summary.events) events, \(summary.caughtUp) caught up, \(summary.verified) codes verified, "
                    + "\(summary.decisionsLogged) code changes logged"
                    + (summary.ruleSet.map { ", rules \($0.id) \($0.version) \($0.hash) activated" } ?? "")
            )
            print("the replaced tables are kept as *_previous until `healthcode rebuild drop-previous`")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The latest rebuild: phase, progress, kept tables.")
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let (rebuild, ranges, previous) = try await RebuildCommand.withRebuild(postgres, Rebuild.Configuration()) {
                try await $0.status()
            }
            guard let rebuild else {
                print("no rebuild recorded")
                return
            }
            let events = ranges.reduce(0) { $0 + $1.events }
            print(
                "rebuild \(rebuild.id): \(rebuild.phase.rawValue), evaluated at \(rebuild.evaluatedAt.rfc3339), "
                    + "\(events)/\(rebuild.totalEvents) events, \(ranges.filter(\.done).count)/\(ranges.count) ranges, "
                    + "rules \(rebuild.ruleSet?.hash ?? "in force")"
            )
            print(
                previous
                    ? "previous tables kept (rollback possible; drop with `rebuild drop-previous`)"
                    : "no previous tables"
            )
        }
    }

    struct DropPrevious: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "drop-previous",
            abstract: "Drop the tables the last switch replaced (ends the rollback window)."
        )
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            try await RebuildCommand.withRebuild(postgres, Rebuild.Configuration()) { try await $0.dropPrevious() }
            print("dropped person_state_previous, person_code_previous, person_presence_previous")
        }
    }

    struct Abandon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give up the unfinished rebuild (e.g. after a failed verification): drop its fresh tables."
        )
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            try await RebuildCommand.withRebuild(postgres, Rebuild.Configuration()) { try await $0.abandon() }
            print("abandoned the unfinished rebuild; the live tables are untouched")
        }
    }

    /// Runs `body` with a rebuild on the migrating role's connection. Statements have no time limit: an index
    /// built over millions of rows takes longer than a service's statement timeout.
    static func withRebuild<Result: Sendable>(
        _ postgres: PostgresOptions,
        _ configuration: Rebuild.Configuration,
        _ body: (Rebuild) async throws -> Result
    ) async throws -> Result {
        let logger = Logger(label: "healthcode.rebuild")
        var settings = postgres.configuration
        settings.statementTimeout = nil
        settings.maximumConnections = max(settings.maximumConnections, configuration.workers + 1)
        // Decides before any activation, as the projector has it (HC_RULES, else the reference file).
        let ruleSet = try RulesOptions.parse([]).ruleSet()
        return try await Backbone.withPostgres(settings.clientConfiguration(), logger: logger) {
            try await body(
                Backbone.rebuild(postgres: $0, configuration: configuration, configured: ruleSet, logger: logger)
            )
        }
    }
}

/// The rebuild's progress on standard error: a bar with the rate and the time left on a terminal, a plain
/// line every 5 seconds otherwise (a log file gets no carriage returns).
final class RebuildProgressBar: Sendable {
    private let terminal = isatty(STDERR_FILENO) == 1
    private let started = ContinuousClock.now
    private let lastLine = Mutex<ContinuousClock.Instant?>(nil)

    func update(_ progress: Rebuild.Progress) {
        let now = ContinuousClock.now
        let due = lastLine.withLock { last -> Bool in
            let interval: Duration = terminal ? .milliseconds(200) : .seconds(5)
            if let previous = last, previous.duration(to: now) < interval, progress.phase == .building { return false }
            last = now
            return true
        }
        guard due else { return }
        let elapsed = started.duration(to: now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(progress.eventsThisRun) / seconds : 0
        let total = max(progress.totalEvents, progress.events)
        let fraction = total > 0 ? Double(progress.events) / Double(total) : 1
        let left = rate > 0 ? Int(Double(total - progress.events) / rate) : 0
        let eta = String(format: "%d:%02d", left / 60, left % 60)
        let width = 30
        let filled = Int(fraction * Double(width))
        let text =
            "rebuild \(progress.phase.rawValue) [\(String(repeating: "#", count: filled))"
            + "\(String(repeating: ".", count: width - filled))] \(Int(fraction * 100))% "
            + "\(progress.events)/\(total) events, \(progress.people) people, \(Int(rate)) ev/s, ETA \(eta)"
        let line = terminal ? "\r" + text + String(repeating: " ", count: 8) : text + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
