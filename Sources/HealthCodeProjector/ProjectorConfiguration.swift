/// Settings of a projector.
public struct ProjectorConfiguration: Sendable {
    /// Kafka topic of the events. Default `healthcode.events`.
    public var topic: String = "healthcode.events"
    /// Consumer group; projectors in one group split the partitions. It also names the positions
    /// stored in PostgreSQL. Default `healthcode-projector`.
    public var group: String = "healthcode-projector"
    /// Most messages applied in one PostgreSQL transaction. Each transaction pays a fixed cost (begin,
    /// position compare-and-set, catalog check, commit with its fsync); 2000 spreads it over twice the
    /// events of 1000 (`bench projector`: +40% events/s, peak RSS 150–170 MB with a backlog of a
    /// million events). Default 2000.
    public var batchSize: Int = 2000
    /// Most consumed batches taken from the consumer and not yet applied. Batches of different
    /// partitions are applied concurrently (one transaction each), so this also bounds the
    /// concurrent transactions; the PostgreSQL pool should have at least as many connections.
    /// Default 4.
    public var maximumBatchesInFlight: Int = 4
    /// Consumer-group session timeout: how long a crashed projector holds its partitions before the
    /// group moves them to another member. Default 6 s (Kafka's minimum; joins are fast with it).
    public var sessionTimeout: Duration = .seconds(6)
    /// Heartbeat interval to the group coordinator; well below ``sessionTimeout``. Default 500 ms.
    public var heartbeatInterval: Duration = .milliseconds(500)
    /// Longest wait for one batch's transaction before it is abandoned and retried (a connection
    /// the server dropped can leave a query waiting for good in the client). Default 30 s.
    public var transactionTimeout: Duration = .seconds(30)
    /// First wait before retrying a batch after a PostgreSQL failure; doubles up to
    /// ``maximumRetryDelay``. Default 100 ms.
    public var retryDelay: Duration = .milliseconds(100)
    /// Longest wait between retries of a failing batch. Default 5 s.
    public var maximumRetryDelay: Duration = .seconds(5)

    /// The local defaults.
    public init() {}
}
