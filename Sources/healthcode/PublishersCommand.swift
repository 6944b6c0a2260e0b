import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodePostgres
import Logging

struct Publishers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publishers",
        abstract: "Manage the publishers that may post events to the gateway.",
        subcommands: [Add.self, List.self, Revoke.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a publisher with an ES256 public key or a new API key (printed once).",
            discussion: """
                The id is the CloudEvents source of everything it publishes, e.g. \
                urn:hc:publisher:gd-health-bureau. With --public-key-file, the publisher signs JWT client \
                assertions (ES256, aud = the gateway's --assertion-audience) with its private key; without, a \
                new API key is printed on stdout, once: only its SHA-256 is stored.
                """
        )

        @Option(help: "Publisher id: the CloudEvents source of its events.") var id: String
        @Option(help: "Comma-separated event types it may publish, e.g. hc.test-result.v1.") var types: String
        @Option(name: .customLong("public-key-file"), help: "PEM file of its ES256 (P-256) public key.")
        var publicKeyFile: String?
        @Option(help: "Its own sustained events/s (default: the gateway's --publisher-rate); needs --burst.")
        var rate: Int?
        @Option(help: "Its own burst in events (default: the gateway's --publisher-burst); needs --rate.")
        var burst: Int?
        @OptionGroup var postgres: PostgresOptions

        var rateLimit: PublisherRateLimit? {
            guard let rate, let burst else { return nil }
            return PublisherRateLimit(eventsPerSecond: rate, burstEvents: burst)
        }

        func validate() throws {
            guard (rate == nil) == (burst == nil) else {
                throw ValidationError("--rate and --burst go together: give both or neither")
            }
            if let rate, let burst {
                guard (1...Int(Int32.max)).contains(rate), (1...Int(Int32.max)).contains(burst) else {
                    throw ValidationError("--rate and --burst must be between 1 and \(Int32.max)")
                }
            }
            let unknown = eventTypes.filter { EventType(rawValue: $0) == nil }
            guard unknown.isEmpty, !eventTypes.isEmpty else {
                throw ValidationError(
                    "--types must list event types of the contract: "
                        + EventType.allCases.map(\.rawValue).joined(separator: ", ")
                )
            }
        }

        var eventTypes: [String] { types.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

        func run() async throws {
            let logger = Logger(label: "healthcode.publishers")
            var apiKey: String?
            let record: PublisherRecord
            if let publicKeyFile {
                let pem = try String(contentsOfFile: publicKeyFile, encoding: .utf8)
                record = try PublisherRecord.es256(
                    id: id,
                    publicKeyPEM: pem,
                    eventTypes: eventTypes,
                    rateLimit: rateLimit
                )
            } else {
                let key = PublisherAPIKey.generate()
                apiKey = key
                record = .apiKey(id: id, apiKey: key, eventTypes: eventTypes, rateLimit: rateLimit)
            }
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await PublisherStore(client: client, logger: logger).add(record)
            }
            if let apiKey {
                print("publisher \(id) registered; its API key (shown once, send as 'Authorization: Bearer KEY'):")
                print(apiKey)
            } else {
                print("publisher \(id) registered with an ES256 public key")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List publishers: id, credential, types, rate limit (events/s, burst), state."
        )

        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.publishers")
            let publishers = try await Backbone.withPostgres(
                postgres.configuration.clientConfiguration(),
                logger: logger
            ) { client in
                try await PublisherStore(client: client, logger: logger).all()
            }
            for publisher in publishers {
                let credential =
                    switch publisher.credential {
                    case .es256PublicKey: "es256"
                    case .apiKeyHash: "api-key"
                    }
                let state = publisher.revokedAt.map { "revoked \($0.rfc3339Seconds)" } ?? "active"
                let limit =
                    publisher.rateLimit.map { "\($0.eventsPerSecond)/s burst \($0.burstEvents)" } ?? "gateway default"
                let types = publisher.eventTypes.joined(separator: ",")
                print("\(publisher.id)\t\(credential)\t\(types)\t\(limit)\t\(state)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a publisher; gateways refuse it within their registry refresh interval."
        )

        @Argument(help: "Publisher id.") var id: String
        @OptionGroup var postgres: PostgresOptions

        func run() async throws {
            let logger = Logger(label: "healthcode.publishers")
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await PublisherStore(client: client, logger: logger).revoke(id)
            }
            print("publisher \(id) revoked")
        }
    }
}
