import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import Logging

/// `healthcode evidence`: an evidence bundle (``EvidenceBundle``) for a case file, and its offline check.
struct Evidence: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evidence",
        abstract: "A self-contained file that proves a code: events, rule set, result, hashes; and its check.",
        subcommands: [Make.self, Verify.self],
        defaultSubcommand: Make.self
    )

    struct Make: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "make",
            abstract: "Write the evidence of a person's code at --at as known at --known-at (audited).",
            discussion: """
                Reads the person's whole archive, every designation and the file of the rule set that judges \
                (the one in force at --known-at, or --rules), as the query API's role, after recording the read \
                in analyst_audit (endpoint evidence-cli). `healthcode evidence verify FILE` checks the file on \
                any machine, without a server.
                """
        )

        @OptionGroup var replay: ReplayOptions
        @Option(name: .shortAndLong, help: "Where to write the file ('-': standard output).") var output: String = "-"
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.evidence")
            let (at, knownAt) = try replay.instants()
            let rules: Backbone.EvidenceRules =
                if let file = try replay.rulesFile() {
                    .file(file)
                } else if let name = replay.rules {
                    .named(name)
                } else {
                    .inForce
                }
            let configured = try RulesOptions.parse([]).ruleSetFile().bytes
            let bundle = try await replay.audited(endpoint: "evidence-cli", postgres: postgres, logger: logger) {
                client in
                do {
                    return try await Backbone.evidence(
                        postgres: client,
                        configuredFile: configured,
                        subject: replay.pseudonym,
                        at: at,
                        knownAt: knownAt ?? at,
                        rules: rules,
                        context: [
                            ("analyst", replay.analyst), ("purpose", replay.purpose),
                            ("madeAt", Instant.now().rfc3339),
                        ],
                        logger: logger
                    )
                } catch let error as EvidenceError where error.code == "unknown-rule-set" {
                    throw ReplayOptions.unknownRuleSet(replay.rules ?? "")
                }
            }
            let bytes = Data(bundle.jsonBytes())
            if output == "-" {
                FileHandle.standardOutput.write(bytes)
            } else {
                try bytes.write(to: URL(fileURLWithPath: output))
            }
            let counted = bundle.events.filter { $0.counted }.count
            var summary = "evidence: \(bundle.decision.status.rawValue.uppercased()) by \(bundle.ruleSet.id) "
            summary += "\(bundle.ruleSet.version); \(bundle.events.count) events (\(counted) counted), "
            summary += "\(bundle.areaEvents.count) area events; digest \(bundle.digest)"
            summary += output == "-" ? "\n" : " → \(output)\n"
            FileHandle.standardError.write(Data(summary.utf8))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an evidence file offline: hashes, marks and result re-made from its events and rules.",
            discussion: "Exit status 0 when everything matches; 1 with each difference listed when not."
        )

        @Argument(help: "The evidence file ('-': standard input).") var file: String

        func run() throws {
            let bytes: Data
            do {
                bytes =
                    file == "-"
                    ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw EvaluateFailure("cannot read evidence file \(file)")
            }
            let verification = EvidenceVerification.verify(Array(bytes))
            guard verification.isVerified, let bundle = verification.remade else {
                for problem in verification.problems { print("differs: \(problem)") }
                throw ExitCode(1)
            }
            print(
                "verified: \(bundle.subject) at \(bundle.at.rfc3339) as known at \(bundle.knownAt.rfc3339): "
                    + "\(bundle.decision.status.rawValue.uppercased()) by rule set \(bundle.ruleSet.id) "
                    + "\(bundle.ruleSet.version) (\(bundle.ruleSet.contentHash)); \(bundle.events.count) events, "
                    + "\(bundle.areaEvents.count) area events; digest \(bundle.digest)"
            )
        }
    }
}
