import ArgumentParser
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging

extension ClientPlatformRecord.Kind: ExpressibleByArgument {}

struct Platforms: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "platforms",
        abstract: "Manage the client platforms of the query API: residents' apps and checkpoint readers.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a platform; its new API key is printed once (only its SHA-256 is stored).",
            discussion: """
                --kind resident: a residents' app, may request its users' signed codes (POST /v1/code-lookups). \
                --kind checkpoint: a checkpoint reader, may read a person's code with reasons and history \
                (GET /v1/people/{p}/code), every read audited. The platform sends 'Authorization: Bearer KEY'. \
                Without --rate/--burst it is held to the API's --platform-rate/--platform-burst.
                """
        )

        @Option(help: "Platform id, e.g. urn:hc:platform:gd-health-app.") var id: String
        @Option(help: "resident or checkpoint.") var kind: ClientPlatformRecord.Kind
        @Option(help: "Its own sustained requests/s (default: the API's --platform-rate); needs --burst.")
        var rate: Double?
        @Option(help: "Its own burst in requests (default: the API's --platform-burst); needs --rate.")
        var burst: Int?
        @OptionGroup var postgres: PostgresOptions

        func validate() throws {
            guard (rate == nil) == (burst == nil) else {
                throw ValidationError("--rate and --burst go together: give both or neither")
            }
            if let rate, let burst {
                guard rate > 0, rate.isFinite, (1...Int(Int32.max)).contains(burst) else {
                    throw ValidationError("--rate must be above 0 and --burst between 1 and \(Int32.max)")
                }
            }
            guard !id.isEmpty, id.count <= 200 else { throw ValidationError("--id must have 1 to 200 characters") }
        }

        func run() async throws {
            let logger = Logger(label: "healthcode.platforms")
            let limit = rate.flatMap { rate in burst.map { RequestRateLimit(requestsPerSecond: rate, burst: $0) } }
            let key = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
                client in
                try await Backbone.registerPlatform(
                    id: id,
                    kind: kind,
                    rateLimit: limit,
                    postgres: client,
                    logger: logger
                )
            }
            print(
                "\(kind.rawValue) platform \(id) registered; its API key (shown once, send as 'Authorization: Bearer KEY'):"
            )
            print(key)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List platforms: id, kind, rate limit (requests/s, burst), state."
        )

        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.platforms")
            let platforms = try await Backbone.withPostgres(
                postgres.configuration.clientConfiguration(),
                logger: logger
            ) { client in
                try await ClientPlatformStore(client: client, logger: logger).all()
            }
            for platform in platforms {
                let limit = platform.rateLimit.map { "\($0.requestsPerSecond)/s burst \($0.burst)" } ?? "API default"
                let state = platform.revokedAt.map { "removed \($0.rfc3339Seconds)" } ?? "active"
                print("\(platform.id)\t\(platform.kind.rawValue)\t\(limit)\t\(state)")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a platform; APIs refuse its key within their platform refresh interval (5 s)."
        )

        @Argument(help: "Platform id.") var id: String
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.platforms")
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await ClientPlatformStore(client: client, logger: logger).remove(id)
            }
            print("platform \(id) removed")
        }
    }
}
