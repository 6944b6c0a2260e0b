import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging

/// `healthcode rules list|show|activate`: rule sets as audited versions (migration 0015).
struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Rule sets as audited versions: which one decides from when, who activated it.",
        subcommands: [List.self, Show.self, Activate.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every activation, oldest first: effective from, id, version, hash, by, at, role."
        )
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            for activation in try await Rules.withStore(postgres, { try await $0.activations() }) {
                print(
                    [
                        activation.effectiveFrom.rfc3339, activation.ruleSet.id, activation.ruleSet.version,
                        activation.ruleSet.hash, "by \(activation.activatedBy)", activation.activatedAt.rfc3339,
                        activation.databaseRole,
                    ].joined(separator: "\t")
                )
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a rule set's file, byte for byte as activated."
        )
        @Argument(help: "The rule set's hash (sha256:…), as decisions and `rules list` name it.") var hash: String
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            guard let body = try await Rules.withStore(postgres, { try await $0.body(ofHash: hash) }) else {
                throw ValidationError("no rule set with hash \(hash) has its file stored")
            }
            FileHandle.standardOutput.write(Data(body))
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store a rule set file and make it decide from an instant on (recorded, never undone).",
            discussion: """
                Everyone is first evaluated under the rule set in force and under this one (as `healthcode \
                impact --rules FILE` does). If more than --hold-over people would turn red, the activation is \
                held instead (printed as `held #ID`) until another operator approves it with `healthcode \
                approvals approve ID --by NAME`.
                """
        )
        @Argument(help: "The rule set file.") var file: String
        @Option(help: "When it takes effect (RFC 3339; default now).") var effective: String?
        @Option(help: "Who activates it (recorded with the activation).") var by: String
        @OptionGroup var impact: ImpactOptions
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let effectiveFrom: Instant
            if let effective {
                guard let instant = Instant(rfc3339: effective) else {
                    throw ValidationError("--effective must be an RFC 3339 instant such as 2020-04-03T10:00:00Z")
                }
                effectiveFrom = instant
            } else {
                effectiveFrom = Instant.now()
            }
            guard !by.isEmpty else { throw ValidationError("--by must name who activates the rule set") }
            let body = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            do { _ = try RuleSet.decode(body) } catch { throw ValidationError("\(file): \(error)") }
            let configured = try RulesOptions.parse([]).ruleSet()
            let logger = Logger(label: "healthcode.rules")
            let proposal = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger)
            {
                client in
                let bar = try await impact.progress(client, logger: logger)
                defer { bar.finish() }
                return try await Backbone.proposeRuleSet(
                    file: body,
                    effectiveFrom: effectiveFrom,
                    by: by,
                    threshold: impact.holdOver,
                    workers: impact.workers,
                    postgres: client,
                    configured: configured,
                    progress: { bar.advance(by: $0) },
                    logger: logger
                )
            }
            switch proposal {
            case .activated(let activation, let report):
                print(
                    "activated \(activation.ruleSet.id) \(activation.ruleSet.version) \(activation.ruleSet.hash) "
                        + "from \(activation.effectiveFrom.rfc3339) by \(activation.activatedBy); "
                        + "\(report.changed) of \(report.people) people change, \(report.turningRed) turn red"
                )
            case .held(let id, let report):
                print(
                    "held #\(id): \(report.turningRed) people would turn red (over \(impact.holdOver)); another operator "
                        + "decides with healthcode approvals approve|reject \(id) --by NAME"
                )
            }
        }
    }

    static func withStore<Result: Sendable>(
        _ postgres: PostgresOptions,
        _ body: (RuleSetVersionStore) async throws -> Result
    ) async throws -> Result {
        let logger = Logger(label: "healthcode.rules")
        return try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
            try await body(RuleSetVersionStore(client: $0, logger: logger))
        }
    }
}
