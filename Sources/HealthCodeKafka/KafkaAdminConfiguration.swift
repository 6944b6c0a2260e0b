/// How a ``KafkaAdmin`` talks to the cluster.
public struct KafkaAdminConfiguration: Sendable {
    /// `bootstrap.servers`: `host:port` of one or more brokers.
    public var bootstrapServers: [String]
    /// `client.id`. Default `healthcode-admin`.
    public var clientID: String
    /// How long one admin request (including connecting) may take. Default 30 s.
    public var requestTimeout: Duration
    /// Raw librdkafka properties, applied last.
    public var properties: [String: String]

    /// Creates a configuration with the documented defaults.
    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = "healthcode-admin"
        self.requestTimeout = .seconds(30)
        self.properties = [:]
    }

    var rdkafkaProperties: [String: String] {
        var result = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientID,
        ]
        result.merge(properties) { _, raw in raw }
        return result
    }
}
