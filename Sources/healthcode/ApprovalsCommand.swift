import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging

/// `healthcode approvals`: changes held for a second operator (`held_change`), and their decisions.
struct Approvals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "Changes held because they would turn many people red: list, approve, reject (audited).",
        subcommands: [List.self, Approve.self, Reject.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Held changes, oldest first: id, kind, turning red, threshold, requested by and at, status."
        )
        @Flag(help: "Decided changes too.") var all = false
        @Flag(help: "Print each change's impact report (JSON) under it.") var impact = false
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            for change in try await Approvals.withStore(postgres, { try await $0.changes(includeDecided: all) }) {
                print(Approvals.line(change))
                if impact { print("  " + change.impact) }
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a held change as a second operator: a rule set is activated; a designation published.",
            discussion: """
                The approving operator must not be the one who asked. A rule set is activated in the same \
                transaction as the approval. A designation is appended to the event log (--kafka-bootstrap) \
                after its approval is stored; one whose append fails stays approved and is appended by the \
                next approval or by any gateway within its held-change interval.
                """
        )
        @Argument(help: "The held change's id (healthcode approvals list).") var id: Int64
        @Option(help: "Who approves (recorded).") var by: String
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            try await Approvals.decide(id, approve: true, by: by, kafka: kafka, postgres: postgres)
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject a held change; it is never applied.")
        @Argument(help: "The held change's id (healthcode approvals list).") var id: Int64
        @Option(help: "Who rejects (recorded).") var by: String
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            try await Approvals.decide(id, approve: false, by: by, kafka: kafka, postgres: postgres)
        }
    }

    static func decide(
        _ id: Int64,
        approve: Bool,
        by: String,
        kafka: KafkaOptions,
        postgres: PostgresOptions
    ) async throws {
        guard !by.isEmpty else { throw ValidationError("--by must name who decides") }
        let logger = Logger(label: "healthcode.approvals")
        let decided = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
            client in
            do {
                return try await Backbone.decideHeldChange(
                    id,
                    approve: approve,
                    by: by,
                    topic: kafka.configuration,
                    postgres: client,
                    logger: logger
                )
            } catch let refusal as HeldChangeRefusal {
                throw ValidationError(refusal.description)
            }
        }
        print(line(decided))
    }

    static func line(_ change: HeldChange) -> String {
        var fields = [
            "#\(change.id)", change.kind.rawValue, "turning red \(change.turningRed) (over \(change.threshold))",
            "by \(change.requestedBy)", change.requestedAt.rfc3339, change.status.rawValue,
        ]
        if let effective = change.effectiveFrom { fields.insert("from \(effective.rfc3339)", at: 2) }
        if let decidedBy = change.decidedBy, let at = change.decidedAt { fields += ["by \(decidedBy)", at.rfc3339] }
        if let published = change.publishedAt { fields.append("published \(published.rfc3339)") }
        return fields.joined(separator: "\t")
    }

    static func withStore<Result: Sendable>(
        _ postgres: PostgresOptions,
        _ body: (HeldChangeStore) async throws -> Result
    ) async throws -> Result {
        let logger = Logger(label: "healthcode.approvals")
        return try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
            try await body(HeldChangeStore(client: $0, logger: logger))
        }
    }
}
