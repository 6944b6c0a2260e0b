import HealthCodeCore

/// Settings of a projector.
public struct ProjectorConfiguration: Sendable {
    /// Kafka bootstrap servers. Default `127.0.0.1:19092` (the local broker of `scripts/infra.sh`).
    public var bootstrapServers: [String] = ["127.0.0.1:19092"]
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
    /// How much a fetch from the broker waits for before it is answered (Kafka `fetch.min.bytes`), at
    /// most ``fetchMaxWait``. A projector that has caught up otherwise fetches again as soon as a single
    /// event arrives: under a steady load that is hundreds of tiny fetches, batches and transactions a
    /// second, which cost the broker and the projector more than the events themselves (`bench
    /// freshness` at 12 000 ev/s: p99 3.7 s with 1 byte, under 1 s with 1 MiB). Default 1 MiB.
    public var fetchMinBytes: Int = 1 << 20
    /// Longest a fetch waits for ``fetchMinBytes`` (Kafka `fetch.max.wait.ms`): what a quiet topic adds to
    /// the time until a new event is applied. 50 ms was too short to gather a steady load's events
    /// (`bench freshness` at 12 000 ev/s: p99 2.6 s). Default 100 ms.
    public var fetchMaxWait: Duration = .milliseconds(100)
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
    /// What to do with a partition whose log ends before the position stored in PostgreSQL: the topic
    /// was deleted and created again, the cluster was migrated, or (on the local default) the in-memory
    /// broker restarted. Default ``ReplacedLogAction/reread``.
    public var onReplacedLog: ReplacedLogAction = .reread
    /// How often the projector compares each partition's position with the end of its log as the
    /// latest fetch reported it: for its lag on `/health` (also while nothing commits), and because a
    /// broker may answer a fetch past the end of a replaced log with no records and no error, so no
    /// batch would ever show it. Default 1 s.
    public var watchInterval: Duration = .seconds(1)
    /// How the projector gets its partitions. Default ``Assignment/group``.
    public var assignment: Assignment = .group
    /// How long the projector may hold no partition while the topic's messages wait unapplied before
    /// `/health` answers 503 `no-partitions` and the log says what it waits for. Default 60 s.
    public var unassignedAfter: Duration = .seconds(60)
    /// How long messages may wait with nothing committed before the projector's status says
    /// `not-progressing`, in its reports to PostgreSQL (``ProgressReporter``) as on `/health`. Default 30 s.
    public var stallAfter: Duration = .seconds(30)
    /// How often the projector reports its status to PostgreSQL (`projector_report`, read by the operators'
    /// dashboard): a report older than a few intervals is from a projector that stopped or cannot reach the
    /// database. Each report is one small upsert. Default 5 s.
    public var reportInterval: Duration = .seconds(5)

    /// How a projector gets its partitions.
    public enum Assignment: String, Sendable, CaseIterable {
        /// As a member of the consumer group ``ProjectorConfiguration/group``: projectors started with
        /// the same group split the partitions and take over each other's.
        case group
        /// Every partition of the topic, read directly (no group membership, no join to wait for):
        /// the single-process default (`healthcode up`). Positions live in PostgreSQL either way; run
        /// one such projector per group name.
        case direct
    }

    /// What a projector does when a partition's log was replaced under its stored position.
    public enum ReplacedLogAction: String, Sendable, CaseIterable {
        /// Move the stored position back to the log's start and apply the partition again: events are
        /// idempotent by `source` + `id`, so what was applied before inserts nothing and changes nothing.
        case reread
        /// Stop applying the partition and report it on `/health` (503 `log-replaced`) until an operator
        /// restarts the projector with `reread` (for a cluster where a replaced log needs a decision).
        case halt
    }

    /// The local defaults.
    public init() {}

    /// Refuses a setting outside what the projector allows, before anything starts.
    public func validate() throws(ConfigurationError) {
        try ConfigurationError.check(
            "projector",
            [
                (!bootstrapServers.isEmpty, "bootstrapServers", "must name at least one broker"),
                (!topic.isEmpty, "topic", "must not be empty"),
                (!group.isEmpty, "group", "must not be empty"),
                (batchSize > 0, "batchSize", "must be at least 1"),
                (maximumBatchesInFlight > 0, "maximumBatchesInFlight", "must be at least 1"),
                (sessionTimeout > .zero, "sessionTimeout", "must be more than 0"),
                (
                    heartbeatInterval > .zero && heartbeatInterval < sessionTimeout, "heartbeatInterval",
                    "must be more than 0 and less than sessionTimeout"
                ),
                (transactionTimeout > .zero, "transactionTimeout", "must be more than 0"),
                (retryDelay > .zero, "retryDelay", "must be more than 0"),
                (maximumRetryDelay >= retryDelay, "maximumRetryDelay", "must be at least retryDelay"),
                (watchInterval > .zero, "watchInterval", "must be more than 0"),
                (unassignedAfter > .zero, "unassignedAfter", "must be more than 0"),
                (stallAfter > .zero, "stallAfter", "must be more than 0"),
                (reportInterval >= .milliseconds(100), "reportInterval", "must be at least 100 milliseconds"),
                ((1...(64 << 20)).contains(fetchMinBytes), "fetchMinBytes", "must be between 1 and 67108864"),
                (
                    fetchMaxWait >= .milliseconds(1) && fetchMaxWait <= .seconds(10), "fetchMaxWait",
                    "must be between 1 and 10000 milliseconds"
                ),
            ]
        )
    }
}
