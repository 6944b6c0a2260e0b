import ArgumentParser
import HealthCodeBackbone
import HealthCodeProjector

struct ProjectorOptions: ParsableArguments {
    @Option(name: .customLong("group"), help: "Projector consumer group (HC_PROJECTOR_GROUP).")
    var group: String = Env.string("HC_PROJECTOR_GROUP", ProjectorConfiguration().group)
    @Option(name: .customLong("batch-size"), help: "Most events per projector transaction (HC_PROJECTOR_BATCH_SIZE).")
    var batchSize: Int = Env.int("HC_PROJECTOR_BATCH_SIZE", ProjectorConfiguration().batchSize)
    @Option(
        name: .customLong("batches-in-flight"),
        help: "Most consumed batches not yet applied (HC_PROJECTOR_BATCHES_IN_FLIGHT)."
    )
    var batchesInFlight: Int = Env.int(
        "HC_PROJECTOR_BATCHES_IN_FLIGHT",
        ProjectorConfiguration().maximumBatchesInFlight
    )
    @Option(
        name: .customLong("transaction-timeout"),
        help: "Seconds before a stuck projector transaction is retried (HC_PROJECTOR_TRANSACTION_TIMEOUT)."
    )
    var transactionTimeoutSeconds: Int = Env.int(
        "HC_PROJECTOR_TRANSACTION_TIMEOUT",
        ProjectorConfiguration().transactionTimeout.wholeSeconds
    )

    @Option(name: .customLong("metrics-host"), help: "Projector's /metrics and /health address (HC_METRICS_HOST).")
    var metricsHost: String = Env.string("HC_METRICS_HOST", "127.0.0.1")
    @Option(name: .customLong("metrics-port"), help: "Projector's /metrics and /health port (HC_METRICS_PORT).")
    var metricsPort: Int = Env.int("HC_METRICS_PORT", 9090)
    @Option(
        name: .customLong("stall-after"),
        help: "Seconds with messages waiting and no commit before /health says not-progressing (HC_STALL_AFTER)."
    )
    var stallAfterSeconds: Int = Env.int("HC_STALL_AFTER", 30)
    @Option(
        name: .customLong("on-replaced-log"),
        help: """
            When a partition's log ends before the stored position (topic re-created, broker restarted \
            empty): reread it from its start, or halt it and report 503 on /health (HC_PROJECTOR_ON_REPLACED_LOG).
            """
    )
    var onReplacedLog: String = Env.string(
        "HC_PROJECTOR_ON_REPLACED_LOG",
        ProjectorConfiguration().onReplacedLog.rawValue
    )
    @Option(
        name: .customLong("assignment"),
        help: """
            group: join the consumer group --group and split the partitions with its other members; direct: \
            read every partition, no group (one process per group name; healthcode up always does) \
            (HC_PROJECTOR_ASSIGNMENT).
            """
    )
    var assignment: String = Env.string("HC_PROJECTOR_ASSIGNMENT", ProjectorConfiguration().assignment.rawValue)
    @Option(
        name: .customLong("unassigned-after"),
        help: """
            Seconds holding no partition while the topic's messages wait unapplied before /health says \
            no-partitions (HC_PROJECTOR_UNASSIGNED_AFTER).
            """
    )
    var unassignedAfterSeconds: Int = Env.int(
        "HC_PROJECTOR_UNASSIGNED_AFTER",
        ProjectorConfiguration().unassignedAfter.wholeSeconds
    )
    @Option(
        name: .customLong("fetch-min-bytes"),
        help: "Bytes a fetch from the broker waits for, up to --fetch-max-wait-ms (HC_PROJECTOR_FETCH_MIN_BYTES)."
    )
    var fetchMinBytes: Int = Env.int("HC_PROJECTOR_FETCH_MIN_BYTES", ProjectorConfiguration().fetchMinBytes)
    @Option(
        name: .customLong("fetch-max-wait-ms"),
        help: "Longest a fetch waits for --fetch-min-bytes (HC_PROJECTOR_FETCH_MAX_WAIT_MS)."
    )
    var fetchMaxWaitMilliseconds: Int = Env.int(
        "HC_PROJECTOR_FETCH_MAX_WAIT_MS",
        ProjectorConfiguration().fetchMaxWait.wholeMilliseconds
    )
    @Option(
        name: .customLong("report-interval"),
        help: "Seconds between the projector's status reports to PostgreSQL (HC_PROJECTOR_REPORT_INTERVAL)."
    )
    var reportIntervalSeconds: Int = Env.int(
        "HC_PROJECTOR_REPORT_INTERVAL",
        ProjectorConfiguration().reportInterval.wholeSeconds
    )

    func validate() throws {
        guard ProjectorConfiguration.ReplacedLogAction(rawValue: onReplacedLog) != nil else {
            throw ValidationError("--on-replaced-log must be reread or halt")
        }
        guard ProjectorConfiguration.Assignment(rawValue: assignment) != nil else {
            throw ValidationError("--assignment must be group or direct")
        }
        guard stallAfterSeconds > 0 else { throw ValidationError("--stall-after must be at least 1") }
        // The topic's own flags are checked with it (KafkaOptions); here only the projector's.
        do { try configuration(topic: EventTopicConfiguration()).validate() } catch {
            throw error.flagError(Self.flags)
        }
    }

    /// The flag of each setting of ``ProjectorConfiguration`` that has one.
    static let flags = [
        "group": "--group", "batchSize": "--batch-size", "maximumBatchesInFlight": "--batches-in-flight",
        "transactionTimeout": "--transaction-timeout", "unassignedAfter": "--unassigned-after",
        "fetchMinBytes": "--fetch-min-bytes", "fetchMaxWait": "--fetch-max-wait-ms",
        "stallAfter": "--stall-after", "reportInterval": "--report-interval",
    ]

    func configuration(topic: EventTopicConfiguration) -> ProjectorConfiguration {
        var configuration = ProjectorConfiguration()
        configuration.bootstrapServers = topic.bootstrapServers
        configuration.topic = topic.topic
        configuration.group = group
        configuration.batchSize = batchSize
        configuration.maximumBatchesInFlight = batchesInFlight
        configuration.transactionTimeout = .seconds(transactionTimeoutSeconds)
        configuration.onReplacedLog = ProjectorConfiguration.ReplacedLogAction(rawValue: onReplacedLog) ?? .reread
        configuration.assignment = ProjectorConfiguration.Assignment(rawValue: assignment) ?? .group
        configuration.unassignedAfter = .seconds(unassignedAfterSeconds)
        configuration.fetchMinBytes = fetchMinBytes
        configuration.fetchMaxWait = .milliseconds(fetchMaxWaitMilliseconds)
        configuration.stallAfter = .seconds(stallAfterSeconds)
        configuration.reportInterval = .seconds(reportIntervalSeconds)
        return configuration
    }
}
