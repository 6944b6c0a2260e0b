import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging

struct Reviews: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reviews",
        abstract: "Review offices' officers, and overrides held over a quota for a second officer.",
        subcommands: [Officers.self, Held.self, Approve.self, Reject.self]
    )

    struct Officers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The officers registered under each review office (a publisher of hc.review.v1).",
            subcommands: [Add.self, List.self, Remove.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Register an officer under a review office; its reviews are accepted from then on."
            )
            @Option(help: "The review office: a registered publisher id.") var office: String
            @Option(help: "The officer id its reviews name in data.officer.") var officer: String
            @OptionGroup var postgres: PostgresOptions

            func run() async throws {
                try await Reviews.withStore(postgres) { try await $0.addOfficer(officer, office: office) }
                print("officer \(officer) registered under \(office)")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List registered officers: office, officer.")
            @Option(help: "Only this office.") var office: String?
            @OptionGroup var postgres: PostgresOptions

            func run() async throws {
                let officers = try await Reviews.withStore(postgres) { try await $0.officers(office: office) }
                for (office, officer) in officers { print("\(office)\t\(officer)") }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove an officer; gateways refuse its reviews at once (kept in the audit)."
            )
            @Option(help: "The review office.") var office: String
            @Option(help: "The officer id.") var officer: String
            @OptionGroup var postgres: PostgresOptions

            func run() async throws {
                try await Reviews.withStore(postgres) { try await $0.removeOfficer(officer, office: office) }
                print("officer \(officer) removed from \(office)")
            }
        }
    }

    struct Held: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List overrides held over a quota: id, office, officer, event id, pseudonym, held at, status."
        )
        @Option(help: "Only this office.") var office: String?
        @Flag(help: "Also those already approved or rejected.") var all = false
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let held = try await Reviews.withStore(postgres) { try await $0.held(office: office, all: all) }
            for review in held {
                var line = [
                    "\(review.id)", review.office, review.officer, review.eventID, review.subject,
                    review.heldAt.rfc3339Seconds, review.status.rawValue,
                ]
                if let decidedBy = review.decidedBy, let decidedAt = review.decidedAt {
                    line.append("by \(decidedBy) \(decidedAt.rfc3339Seconds)")
                    if review.status == .approved {
                        line.append(review.publishedAt == nil ? "not yet in the log" : "in the log")
                    }
                }
                print(line.joined(separator: "\t"))
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve held overrides as a second officer and append them to the log.",
            discussion: """
                The approving officer must be registered under the same office and must not be the officer \
                who made the override. The approval is stored first, then the events are appended with \
                data.approvedBy and data.approvedAt; any approved override not yet appended (this or an \
                earlier approval) is appended too.
                """
        )
        @Argument(help: "Ids of held overrides (healthcode reviews held).") var ids: [Int64]
        @Option(help: "The approving officer, another officer of the same office.") var officer: String
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            try await Reviews.decide(ids, approve: true, officer: officer, kafka: kafka, postgres: postgres)
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reject held overrides as a second officer; they are never applied."
        )
        @Argument(help: "Ids of held overrides (healthcode reviews held).") var ids: [Int64]
        @Option(help: "The rejecting officer, another officer of the same office.") var officer: String
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            try await Reviews.decide(ids, approve: false, officer: officer, kafka: kafka, postgres: postgres)
        }
    }

    static func withStore<Result: Sendable>(
        _ postgres: PostgresOptions,
        _ body: (ReviewOfficeStore) async throws -> Result
    ) async throws -> Result {
        let logger = Logger(label: "healthcode.reviews")
        return try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
            try await body(ReviewOfficeStore(client: $0, logger: logger))
        }
    }

    static func decide(
        _ ids: [Int64],
        approve: Bool,
        officer: String,
        kafka: KafkaOptions,
        postgres: PostgresOptions
    ) async throws {
        let logger = Logger(label: "healthcode.reviews")
        let (refusals, release) = try await Backbone.withPostgres(
            postgres.configuration.clientConfiguration(),
            logger: logger
        ) { client in
            try await Backbone.decideHeldReviews(
                ids,
                approve: approve,
                officer: officer,
                topic: kafka.configuration,
                postgres: client,
                logger: logger
            )
        }
        let decided = ids.filter { refusals[$0] == nil }
        print("\(approve ? "approved" : "rejected") by \(officer): \(decided.count) of \(ids.count)")
        for id in ids.sorted() {
            if let refusal = refusals[id] { print("\(id)\trefused\t\(refusal.rawValue)") }
        }
        if let release {
            print("appended to the log: \(release.published); not appended (retried later): \(release.failed)")
        }
        if !refusals.isEmpty || (release?.failed ?? 0) > 0 { throw ExitCode(1) }
    }
}
