/// Settings of the ingestion gateway.
public struct GatewayConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on. Default 8080.
    public var port: Int = 8080
    /// Kafka topic that receives every accepted event. Default `healthcode.events`.
    public var topic: String = "healthcode.events"
    /// Most events accepted in one request; larger batches get 413. Default 1000.
    public var maximumBatchEvents: Int = 1000
    /// Largest request body in bytes; larger bodies get 413 and are never buffered whole. Default 4 MiB.
    public var maximumBodyBytes: Int = 4 << 20
    /// How far an event's `time` may lie ahead of the gateway's clock (publishers' clocks drift);
    /// events further in the future are rejected: a fact cannot be known before it occurred.
    /// Default 5 minutes.
    public var maximumClockSkew: Duration = .seconds(300)
    /// Seconds a client should wait before retrying after a 503. Default 1.
    public var retryAfterSeconds: Int = 1

    /// The local defaults.
    public init() {}
}
