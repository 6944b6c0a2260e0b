import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging
import PostgresNIO

/// How a population-wide evaluation runs and when a change is held (`impact`, `rules activate`).
struct ImpactOptions: ParsableArguments {
    @Option(help: "Evaluations at once (default: one per core).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(
        name: .customLong("hold-over"),
        help: "A change that would turn more than this many people red is held for a second operator (HC_HOLD_OVER)."
    )
    var holdOver: Int = Env.int("HC_HOLD_OVER", 1000)

    func validate() throws {
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be from 1 to 256") }
        guard holdOver >= 0 else { throw ValidationError("--hold-over must not be negative") }
    }

    /// A progress bar over the population on standard error, and its advance.
    func progress(_ postgres: PostgresClient, logger: Logger) async throws -> ProgressBar {
        ProgressBar(total: try await PopulationImpact(postgres: postgres, logger: logger).people(), unit: "people")
    }
}

/// `healthcode impact`: the blast radius of a rule set or a designation before it goes live.
struct Impact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "impact",
        abstract: "Evaluate everyone under the current and a proposed rule set or designation; report transitions.",
        discussion: """
            Every person with a state is evaluated at the instant the change takes effect (or now, if that has \
            passed) under the rule set in force then and the designations archived so far, and again under the \
            change. Prints the transitions (green→yellow, yellow→red, …) by the area each person was last known \
            in, with counts and the smallest pseudonyms as samples; nothing is changed. Exit status 0.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "A proposed rule-set file.") var rules: String?
    @Option(help: "A proposed designation (or its retraction): one event, JSON.") var designation: String?
    @Option(help: "With --rules: when it would take effect (RFC 3339; default now).") var effective: String?
    @Option(help: "Sample pseudonyms per line.") var samples: Int = 5
    @Option(help: "Lines to print in text (all in json).") var top: Int = 30
    @Option(help: "text or json.") var format: Format = .text
    @OptionGroup var impact: ImpactOptions
    @OptionGroup var postgres: PostgresOptions

    func validate() throws {
        guard (rules == nil) != (designation == nil) else {
            throw ValidationError("name one proposed change: --rules FILE or --designation FILE")
        }
        guard (0...100).contains(samples) else { throw ValidationError("--samples must be from 0 to 100") }
        guard designation == nil || effective == nil else {
            throw ValidationError("--effective is for --rules: a designation says when it takes effect")
        }
    }

    func run() async throws {
        let logger = Logger(label: "healthcode.impact")
        let change: ProposedChange
        if let rules {
            let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rules)))
            do { _ = try RuleSet.decode(file) } catch { throw ValidationError("--rules \(rules): \(error)") }
            let effectiveFrom = try ReplayOptions.instant(effective, option: "--effective") ?? Instant.now()
            change = .ruleSet(file: file, effectiveFrom: effectiveFrom)
        } else {
            let path = designation ?? ""
            do {
                change = .designation(try EventDecoder.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: path)))))
            } catch {
                throw ValidationError("--designation \(path): \(error)")
            }
        }
        let configured = try RulesOptions.parse([]).ruleSet()
        let started = ContinuousClock.now
        let (comparison, report) = try await Backbone.withPostgres(
            postgres.configuration.clientConfiguration(),
            logger: logger
        ) { client in
            let comparison = try await Backbone.comparison(
                of: change,
                at: change.comparedAt(now: Instant.now()),
                postgres: client,
                configured: configured,
                logger: logger
            )
            let bar = try await impact.progress(client, logger: logger)
            let report = try await PopulationImpact(postgres: client, logger: logger)
                .report(comparison, workers: impact.workers, samplesPerLine: samples) { bar.advance(by: $0) }
            bar.finish()
            return (comparison, report)
        }
        switch format {
        case .json:
            FileHandle.standardOutput.write(Data(report.jsonBytes() + Array("\n".utf8)))
        case .text:
            let elapsed = started.duration(to: .now)
            let text = Self.text(
                report,
                comparison,
                designation: designation != nil,
                holdOver: impact.holdOver,
                top: top,
                elapsed: elapsed
            )
            print(text, terminator: "")
        }
    }

    /// The report for people: what is compared, the totals, then the busiest lines.
    static func text(
        _ report: ImpactReport,
        _ comparison: PolicyComparison,
        designation: Bool,
        holdOver: Int,
        top: Int,
        elapsed: Duration
    ) -> String {
        let current = comparison.current.ruleSet
        let proposed = comparison.proposed.ruleSet
        var out = "impact at \(comparison.at.rfc3339): rule set \(current.id) \(current.version)"
        if designation {
            out += ", with the designation"
        } else if proposed.contentHash == current.contentHash {
            out += " → the same rule set"
        } else {
            out += " → \(proposed.id) \(proposed.version) (\(proposed.contentHash))"
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        out += "\n  \(ProgressBar.grouped(report.people)) people evaluated in \(String(format: "%.1f", seconds)) s"
        out +=
            "; \(ProgressBar.grouped(report.changed)) would change, \(ProgressBar.grouped(report.turningRed)) turn red"
        out += report.turningRed > holdOver ? " (over \(holdOver): an activation would be held)\n" : "\n"
        for (transition, count) in report.byTransition.sorted(by: { $0.key < $1.key }) {
            out += "  \(transition.from.rawValue) → \(transition.to.rawValue): \(ProgressBar.grouped(count))\n"
        }
        let lines = report.lines
        if !lines.isEmpty { out += "  area    from    to      people  samples\n" }
        for line in lines.prefix(top) {
            let area = line.area?.description ?? "(none)"
            out += "  " + area.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += line.transition.from.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += line.transition.to.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += ProgressBar.grouped(line.count).padding(toLength: 8, withPad: " ", startingAt: 0)
            out += line.samples.joined(separator: " ") + "\n"
        }
        if lines.count > top { out += "  … \(lines.count - top) more lines (--top, --format json)\n" }
        return out
    }
}
