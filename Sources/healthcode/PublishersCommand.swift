import ArgumentParser
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodeInbound
import HealthCodeKafka
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
        @Flag(help: "Also give it an inbound Kafka topic to produce to (created now, with its rejects topic).")
        var kafka = false
        @Option(
            name: .customLong("inbound-topic"),
            help: "Its inbound topic with --kafka (default: healthcode.inbound.<id without urn:hc:publisher:>)."
        )
        var inboundTopic: String?
        @OptionGroup var postgres: PostgresOptions
        @OptionGroup var topic: KafkaOptions
        @OptionGroup var inbound: InboundOptions

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
            if let inboundTopic {
                guard kafka else { throw ValidationError("--inbound-topic needs --kafka") }
                guard InboundTopic.isValid(inboundTopic) else {
                    throw ValidationError(
                        "--inbound-topic must start with \(InboundTopic.prefix) and hold only letters, digits, '.', "
                            + "'_' and '-' (at most 200 characters)"
                    )
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
            var record: PublisherRecord
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
            let inbound = kafka ? inboundTopic ?? InboundTopic.name(forPublisher: id) : nil
            record.inboundTopic = inbound
            if let inbound {
                let processor = self.inbound.configuration(topic: topic.configuration)
                let admin = try KafkaAdmin(
                    configuration: KafkaAdminConfiguration(bootstrapServers: processor.bootstrapServers),
                    logger: logger
                )
                try await InboundTopics(admin: admin, configuration: processor).ensure(inbound: [inbound])
            }
            try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) { client in
                try await PublisherStore(client: client, logger: logger).add(record)
            }
            if let inbound { print(KafkaAccess(publisher: id, inbound: inbound).instructions) }
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
            abstract: "List publishers: id, credential, types, rate limit (events/s, burst), state, inbound topic."
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
                let inbound = publisher.inboundTopic ?? "http only"
                print("\(publisher.id)\t\(credential)\t\(types)\t\(limit)\t\(state)\t\(inbound)")
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

/// What a deployment on Apache Kafka sets up for a publisher that produces to its inbound topic: a SASL/SCRAM
/// user of its own that may write only its inbound topic and read only its rejects topic. The local broker
/// (Tansu) has neither SCRAM users nor ACLs; these are the commands for Apache Kafka's own tools.
struct KafkaAccess {
    let publisher: String
    let inbound: String

    /// The Kafka user name: the inbound topic's suffix.
    var user: String { String(inbound.dropFirst(InboundTopic.prefix.count)) }

    var instructions: String {
        let rejects = InboundTopic.rejects(ofInbound: inbound)
        return """
            publisher \(publisher) produces to Kafka topic \(inbound) (one CloudEvent JSON per message, key: anything);
            the processor writes what it refuses, with reasons, to \(rejects).
            On Apache Kafka, give it a SCRAM user that may write only there (run with your admin client config):
              kafka-configs.sh --bootstrap-server BROKER --command-config admin.properties --alter \\
                --add-config 'SCRAM-SHA-512=[password=CHOOSE-ONE]' --entity-type users --entity-name \(user)
              kafka-acls.sh --bootstrap-server BROKER --command-config admin.properties --add \\
                --allow-principal User:\(user) --operation Write --operation Describe --topic \(inbound)
              kafka-acls.sh --bootstrap-server BROKER --command-config admin.properties --add \\
                --allow-principal User:\(user) --operation Read --operation Describe --topic \(rejects)
              kafka-acls.sh --bootstrap-server BROKER --command-config admin.properties --add \\
                --allow-principal User:\(user) --operation Read --group \(user). --resource-pattern-type prefixed
            and the publisher's client: security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512,
            sasl.username=\(user), enable.idempotence=true, acks=all. (The local Tansu broker has no ACLs.)
            """
    }
}
