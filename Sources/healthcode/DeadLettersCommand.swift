import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodePostgres
import HealthCodeProjector
import Logging

struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "Show and replay messages the projector could not decode or apply.",
        subcommands: [List.self, Replay.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters: id, Kafka position, when, why (never their content)."
        )

        @Flag(help: "Include letters already replayed.")
        var all = false
        @Option(help: "Most letters to list.")
        var limit = 100
        @OptionGroup var postgres: PostgresOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            _ = Observability.bootstrap(level: logging.level)
            let logger = Logger(label: "healthcode.dead-letters")
            let letters = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger)
            {
                try await ProjectionStore(client: $0, logger: logger).deadLetters(includeReplayed: all, limit: limit)
            }
            if letters.isEmpty { print("no dead letters") }
            for stored in letters {
                let letter = stored.letter
                let state = stored.replayedAt.map { "replayed \($0.rfc3339Seconds)" } ?? "waiting"
                print(
                    "\(stored.id)\t\(letter.topic)[\(letter.partition)]@\(letter.offset)\t\(stored.failedAt.rfc3339Seconds)"
                        + "\t\(state)\t\(letter.value.count) bytes\t\(letter.reason)"
                )
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-apply dead letters (all waiting ones, or those given) after the cause was fixed."
        )

        @Argument(help: "Dead letter ids; none: every waiting letter.")
        var ids: [Int64] = []
        @OptionGroup var postgres: PostgresOptions
        @OptionGroup var rules: RulesOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            _ = Observability.bootstrap(level: logging.level)
            let logger = Logger(label: "healthcode.dead-letters")
            let ruleSet = try rules.ruleSet()
            let outcomes = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger)
            {
                try await Projector.deadLetterReplay(
                    storage: ProjectionStore(client: $0, logger: logger),
                    ruleSet: ruleSet,
                    logger: logger
                )
                .replay(ids: ids.isEmpty ? nil : Set(ids))
            }
            for outcome in outcomes {
                print("\(outcome.id)\t" + (outcome.failure.map { "still failing: \($0)" } ?? "applied"))
            }
            let failed = outcomes.count { $0.failure != nil }
            print("replayed \(outcomes.count - failed) of \(outcomes.count)")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
