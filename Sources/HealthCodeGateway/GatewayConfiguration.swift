import HealthCodeCore
import HealthCodeHTTP

/// Settings of the ingestion gateway.
public struct GatewayConfiguration: Sendable {
    /// Kafka bootstrap servers. Default `127.0.0.1:19092` (the local broker of `scripts/infra.sh`).
    public var bootstrapServers: [String] = ["127.0.0.1:19092"]
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
    /// How long a client may stay silent on a connection and take to send a body (408 beyond it), so that
    /// a slow client cannot hold one of the ``maximumConcurrentRequests`` slots. Defaults 30 s each.
    public var timeouts = HTTPTimeouts()
    /// How far an event's `time` may lie ahead of the gateway's clock (publishers' clocks drift);
    /// events further in the future are rejected: a fact cannot be known before it occurred.
    /// Default 5 minutes.
    public var maximumClockSkew: Duration = .seconds(300)
    /// Seconds a client should wait before retrying after a 503. Default 1.
    public var retryAfterSeconds: Int = 1
    /// Ingest requests handled at once; more are shed with 503 + `Retry-After` before their body is
    /// read, so at most this many bodies (each up to ``maximumBodyBytes``) are in memory. Default 64.
    public var maximumConcurrentRequests: Int = 64
    /// Sustained events per second each publisher may send unless it is registered with its own
    /// limit (``PublisherRateLimit``); faster gets 429 + `Retry-After`. Default 20 000.
    public var publisherEventsPerSecond: Int = 20_000
    /// Events a publisher without its own limit may send in a burst above its rate (at least one
    /// full batch). Default 40 000.
    public var publisherBurstEvents: Int = 40_000
    /// How long the log may take to acknowledge an event before the gateway gives up on it and
    /// answers 503 (Kafka `delivery.timeout.ms`). Default 15 s.
    public var deliveryTimeout: Duration = .seconds(15)
    /// How long an accepted event may wait in the producer for others to share its request to the
    /// broker (Kafka `linger.ms`): it adds at most this to a 202, and spares the broker a request per
    /// partition per ingest request under a steady load (`bench freshness` at 16 000 ev/s: p99 3.8 s
    /// at 10 ms, 0.6 s at 20 ms, 0.3 s at 50 ms; `bench ingest`'s 8 closed-loop connections lose
    /// about a third of their rate at 20 ms). Default 20 ms.
    public var produceLinger: Duration = .milliseconds(20)
    /// How often the registered publishers are re-read (a revocation takes effect within it). Default 5 s.
    public var publisherRefreshInterval: Duration = .seconds(5)
    /// The URL publishers reach this gateway at (e.g. `https://gateway.gd.example`), which names this
    /// deployment. Default `nil`: `http://<host>:<port>`.
    public var publicURL: String?
    /// The `aud` that publishers' JWT client assertions must carry. Default `nil`: the gateway's
    /// ``effectivePublicURL``, so an assertion made for one deployment is refused by every other.
    public var assertionAudience: String?
    /// Overrides (`hc.review.v1`) one officer may apply per clock hour; more are held for a second
    /// officer. Default 50 (an officer deciding cases one by one rarely needs more than one a minute).
    public var overridesPerOfficerPerHour: Int = 50
    /// Overrides all officers of one review office may apply together per clock hour; more are held
    /// for a second officer. Default 500.
    public var overridesPerOfficePerHour: Int = 500
    /// How often approved overrides not yet in the log are appended, the held-override gauge is
    /// refreshed and expired quota counts are deleted. Default 5 s.
    public var heldReviewInterval: Duration = .seconds(5)
    /// A designation (or its retraction) that would turn more than this many people red is held for a second
    /// operator (`healthcode approvals`) instead of appended. Default 1000.
    public var designationHoldOver: Int = 1000
    /// How long the gateway may spend counting whom a designation would turn red (the people present in its
    /// area while it is in effect); a count not done by then holds the designation, as over the threshold.
    /// Default 5 s.
    public var designationImpactBudget: Duration = .seconds(5)
    /// Longest accepted lifetime (`exp` − `iat`) of a client assertion. Default 5 minutes.
    public var maximumAssertionLifetime: Duration = .seconds(300)
    /// Recently acknowledged (source, id) keys remembered to answer re-sent events `duplicate`.
    /// Default 200 000.
    public var recentEventCapacity: Int = 200_000

    /// The local defaults.
    public init() {}

    /// ``publicURL``, or `http://<host>:<port>` without one.
    public var effectivePublicURL: String { publicURL ?? "http://\(host):\(port)" }

    /// The audience client assertions must carry: ``assertionAudience``, or ``effectivePublicURL``.
    public var effectiveAssertionAudience: String { assertionAudience ?? effectivePublicURL }

    /// The override quotas.
    public var overrideQuota: OverrideQuota {
        OverrideQuota(perOfficer: overridesPerOfficerPerHour, perOffice: overridesPerOfficePerHour)
    }

    /// Refuses a setting outside what the gateway allows, before anything starts.
    public func validate() throws(ConfigurationError) {
        try ConfigurationError.check(
            "gateway",
            [
                (!bootstrapServers.isEmpty, "bootstrapServers", "must name at least one broker"),
                (!topic.isEmpty, "topic", "must not be empty"),
                ((0...65_535).contains(port), "port", "must be between 0 and 65535"),
                (maximumBatchEvents > 0, "maximumBatchEvents", "must be at least 1"),
                (maximumBodyBytes > 0, "maximumBodyBytes", "must be at least 1"),
                (
                    maximumClockSkew >= .zero && maximumClockSkew <= .seconds(86_400), "maximumClockSkew",
                    "must be between 0 and 86400 seconds"
                ),
                (retryAfterSeconds > 0, "retryAfterSeconds", "must be at least 1"),
                (maximumConcurrentRequests > 0, "maximumConcurrentRequests", "must be at least 1"),
                (publisherEventsPerSecond > 0, "publisherEventsPerSecond", "must be at least 1"),
                (publisherBurstEvents > 0, "publisherBurstEvents", "must be at least 1"),
                (deliveryTimeout > .zero, "deliveryTimeout", "must be more than 0"),
                (
                    produceLinger >= .zero && produceLinger <= .seconds(1), "produceLinger",
                    "must be between 0 and 1000 milliseconds"
                ),
                (publisherRefreshInterval > .zero, "publisherRefreshInterval", "must be more than 0"),
                (maximumAssertionLifetime > .zero, "maximumAssertionLifetime", "must be more than 0"),
                (recentEventCapacity >= 0, "recentEventCapacity", "must not be negative"),
                (overridesPerOfficerPerHour >= 0, "overridesPerOfficerPerHour", "must not be negative"),
                (overridesPerOfficePerHour >= 0, "overridesPerOfficePerHour", "must not be negative"),
                (heldReviewInterval > .zero, "heldReviewInterval", "must be more than 0"),
                (designationHoldOver >= 0, "designationHoldOver", "must not be negative"),
                (designationImpactBudget > .zero, "designationImpactBudget", "must be more than 0"),
                (publicURL.map { !$0.isEmpty } ?? true, "publicURL", "must not be empty"),
                (assertionAudience.map { !$0.isEmpty } ?? true, "assertionAudience", "must not be empty"),
            ] + timeouts.checks
        )
    }
}
