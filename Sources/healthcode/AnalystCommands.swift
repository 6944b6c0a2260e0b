import ArgumentParser
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodePostgres
import Logging

struct Analysts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analysts",
        abstract: "Manage the analysts that may read explanations and exports from the query API.",
        subcommands: [Add.self, List.self, Revoke.self, MayApprove.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an analyst; its new API key is printed once (only its SHA-256 is stored)."
        )

        @Argument(help: "Analyst id, e.g. a staff number.") var id: String
        @Flag(help: "It may approve or reject held changes in the web console.") var mayApprove = false
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.analysts")
            let key = AnalystAccess.generateKey()
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await AnalystStore(client: client, logger: logger).add(
                    id: id,
                    apiKeySHA256: AnalystAccess.hash(key),
                    mayApprove: mayApprove
                )
            }
            print("analyst \(id) registered; its API key (shown once, send as 'Authorization: Bearer KEY'")
            print("with the purpose of each read in 'X-HC-Purpose'):")
            print(key)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List analysts and whether they are revoked.")

        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.analysts")
            let analysts = try await Backbone.withPostgres(
                postgres.configuration.clientConfiguration(),
                logger: logger
            ) { client in
                try await AnalystStore(client: client, logger: logger).all()
            }
            for analyst in analysts { print("\(analyst.id)\t\(analyst.revoked ? "revoked" : "active")") }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an analyst's key.")

        @Argument(help: "Analyst id.") var id: String
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.analysts")
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await AnalystStore(client: client, logger: logger).revoke(id)
            }
            print("analyst \(id) revoked")
        }
    }
}

extension Analysts {
    struct MayApprove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "may-approve",
            abstract: "Allow an analyst to approve or reject held changes in the web console (--no: forbid it)."
        )

        @Argument(help: "Analyst id.") var id: String
        @Flag(name: .customLong("no"), help: "Forbid it instead.") var forbid = false
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.analysts")
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await AnalystStore(client: client, logger: logger).setMayApprove(id, !forbid)
            }
            print("analyst \(id) \(forbid ? "may not" : "may") approve or reject held changes")
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: """
            Print the audit trail of reads (analysts, checkpoint platforms), newest first: when, reader, purpose, \
            endpoint, subject.
            """
    )

    @Option(help: "Only reads about this pseudonym.") var subject: String?
    @Option(help: "Only reads by this analyst.") var analyst: String?
    @Option(help: "Only reads by this checkpoint platform.") var platform: String?
    @Option(help: "Most entries to print.") var limit: Int = 100
    @OptionGroup var postgres: PostgresOptions

    func run() async throws {
        let logger = Logger(label: "healthcode.audit")
        let entries = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
            client in
            try await AnalystStore(client: client, logger: logger).entries(
                subject: subject,
                analyst: analyst,
                platform: platform,
                limit: limit
            )
        }
        for entry in entries {
            let reader = entry.analyst.map { "analyst:\($0)" } ?? entry.platform.map { "platform:\($0)" } ?? "-"
            print("\(entry.readAt.rfc3339)\t\(reader)\t\(entry.purpose)\t\(entry.endpoint)\t\(entry.subject)")
        }
    }
}
