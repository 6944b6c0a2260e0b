import ArgumentParser
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeConsole
import HealthCodeCore
import HealthCodeGateway
import HealthCodeHTTP
import HealthCodePostgres
import Logging

/// Reads a setting's default from the environment, so every flag can also be set as `HC_…`.
extension Duration {
    /// Whole seconds, for flags that take seconds (defaults come from the libraries' configurations).
    var wholeSeconds: Int { Int(microseconds / 1_000_000) }
    /// Whole milliseconds, for flags that take milliseconds.
    var wholeMilliseconds: Int { Int(microseconds / 1000) }
}

extension ConfigurationError {
    /// This refusal as a command-line error naming the flag that sets the setting (`flags`: setting →
    /// flag); a setting without a flag keeps the library's wording. The bounds are the library's only.
    func flagError(_ flags: [String: String]) -> ValidationError {
        ValidationError(flags[setting].map { "\($0) \(requirement)" } ?? description)
    }
}

enum Env {
    static func string(_ name: String, _ fallback: String) -> String {
        ProcessInfo.processInfo.environment[name] ?? fallback
    }

    static func int(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? fallback
    }

    static func double(_ name: String, _ fallback: Double) -> Double {
        ProcessInfo.processInfo.environment[name].flatMap(Double.init) ?? fallback
    }
}

extension UnknownPeople: ExpressibleByArgument {}

struct ShutdownOptions: ParsableArguments {
    @Option(
        name: .customLong("shutdown-grace-seconds"),
        help: """
            Seconds a graceful shutdown (SIGTERM, Ctrl-C) may take before work still in hand is abandoned \
            and the process exits, whatever is down (HC_SHUTDOWN_GRACE_SECONDS).
            """
    )
    var graceSeconds: Int = Env.int("HC_SHUTDOWN_GRACE_SECONDS", 10)

    func validate() throws {
        guard graceSeconds > 0 else { throw ValidationError("--shutdown-grace-seconds must be at least 1") }
    }

    var grace: Duration { .seconds(graceSeconds) }
}

/// The web console the query API serves (``ConsoleConfiguration``).
struct ConsoleOptions: ParsableArguments {
    @Flag(
        name: .customLong("no-console"),
        help: "Do not serve the web console under /console (HC_CONSOLE=off)."
    )
    var disabled = Env.string("HC_CONSOLE", "on") == "off"

    @Flag(
        name: .customLong("console-secure-cookies"),
        help: """
            Mark the console's session cookie Secure: set it wherever the console is reached over HTTPS \
            (HC_CONSOLE_SECURE_COOKIES=1).
            """
    )
    var secureCookies = Env.string("HC_CONSOLE_SECURE_COOKIES", "0") == "1"

    @Option(
        name: .customLong("console-idle-minutes"),
        help: "Minutes without a request after which a console session ends (HC_CONSOLE_IDLE_MINUTES)."
    )
    var idleMinutes: Int = Env.int("HC_CONSOLE_IDLE_MINUTES", 30)

    @Option(
        name: .customLong("console-stale-feed-minutes"),
        help: """
            Minutes without an event after which the dashboard shows a publisher's feed as stale \
            (HC_CONSOLE_STALE_FEED_MINUTES).
            """
    )
    var staleFeedMinutes: Int = Env.int("HC_CONSOLE_STALE_FEED_MINUTES", 15)

    var configuration: ConsoleConfiguration {
        var configuration = ConsoleConfiguration()
        configuration.enabled = !disabled
        configuration.secureCookies = secureCookies
        configuration.sessionIdleTimeout = .seconds(idleMinutes * 60)
        configuration.staleFeedAfter = .seconds(staleFeedMinutes * 60)
        return configuration
    }

    func validate() throws {
        guard idleMinutes > 0, idleMinutes <= 8 * 60 else {
            throw ValidationError("--console-idle-minutes must be 1 to 480 (sessions end 8 hours after sign-in)")
        }
        guard staleFeedMinutes > 0 else { throw ValidationError("--console-stale-feed-minutes must be at least 1") }
    }
}

struct LoggingOptions: ParsableArguments {
    @Option(
        name: .customLong("log-level"),
        help: "trace, debug, info, notice, warning, error or critical (HC_LOG_LEVEL)."
    )
    var level: String = Env.string("HC_LOG_LEVEL", "info")

    func validate() throws {
        guard Logger.Level(rawValue: level) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }
}

struct PostgresOptions: ParsableArguments {
    @Option(name: .customLong("pg-host"), help: "PostgreSQL host (HC_PG_HOST).")
    var host: String = Env.string("HC_PG_HOST", PostgresConfiguration().host)
    @Option(name: .customLong("pg-port"), help: "PostgreSQL port (HC_PG_PORT).")
    var port: Int = Env.int("HC_PG_PORT", PostgresConfiguration().port)
    @Option(name: .customLong("pg-user"), help: "PostgreSQL role (HC_PG_USER).")
    var user: String = Env.string("HC_PG_USER", PostgresConfiguration().username)
    @Option(name: .customLong("pg-database"), help: "PostgreSQL database (HC_PG_DATABASE).")
    var database: String = Env.string("HC_PG_DATABASE", PostgresConfiguration().database)
    @Option(name: .customLong("pg-max-connections"), help: "Pooled PostgreSQL connections (HC_PG_MAX_CONNECTIONS).")
    var maximumConnections: Int = Env.int("HC_PG_MAX_CONNECTIONS", PostgresConfiguration().maximumConnections)
    @Option(
        name: .customLong("pg-keep-alive-seconds"),
        help: "Seconds between keep-alive queries on idle pooled connections; 0: none (HC_PG_KEEP_ALIVE_SECONDS)."
    )
    var keepAliveSeconds: Int = Env.int(
        "HC_PG_KEEP_ALIVE_SECONDS",
        PostgresConfiguration().keepAliveInterval?.wholeSeconds ?? 0
    )
    @Option(
        name: .customLong("pg-statement-timeout"),
        help: "Seconds before the server cancels a statement; 0: none (HC_PG_STATEMENT_TIMEOUT)."
    )
    var statementTimeoutSeconds: Int = Env.int(
        "HC_PG_STATEMENT_TIMEOUT",
        PostgresConfiguration().statementTimeout?.wholeSeconds ?? 0
    )
    @Option(
        name: .customLong("pg-lock-timeout"),
        help: "Seconds a statement may wait for a lock; 0: none (HC_PG_LOCK_TIMEOUT)."
    )
    var lockTimeoutSeconds: Int = Env.int("HC_PG_LOCK_TIMEOUT", PostgresConfiguration().lockTimeout?.wholeSeconds ?? 0)
    @Option(
        name: .customLong("pg-idle-in-transaction-timeout"),
        help: """
            Seconds a session may sit idle in a transaction before the server ends it; 0: none \
            (HC_PG_IDLE_IN_TRANSACTION_TIMEOUT).
            """
    )
    var idleInTransactionTimeoutSeconds: Int = Env.int(
        "HC_PG_IDLE_IN_TRANSACTION_TIMEOUT",
        PostgresConfiguration().idleInTransactionTimeout?.wholeSeconds ?? 0
    )

    func validate() throws {
        guard keepAliveSeconds >= 0 else { throw ValidationError("--pg-keep-alive-seconds must be 0 (none) or more") }
        for (flag, value) in [
            ("--pg-statement-timeout", statementTimeoutSeconds), ("--pg-lock-timeout", lockTimeoutSeconds),
            ("--pg-idle-in-transaction-timeout", idleInTransactionTimeoutSeconds),
        ] where value < 0 {
            throw ValidationError("\(flag) must be 0 (none) or more seconds")
        }
        do { try configuration.validate() } catch { throw error.flagError(Self.flags) }
    }

    /// The flag of each setting of ``PostgresConfiguration`` that has one.
    static let flags = [
        "host": "--pg-host", "port": "--pg-port", "username": "--pg-user", "database": "--pg-database",
        "maximumConnections": "--pg-max-connections", "keepAliveInterval": "--pg-keep-alive-seconds",
        "statementTimeout": "--pg-statement-timeout", "lockTimeout": "--pg-lock-timeout",
        "idleInTransactionTimeout": "--pg-idle-in-transaction-timeout",
    ]

    /// What `service` logs in with: its own role (``ServiceRole``), its password from the role's
    /// variable (`HC_PG_API_PASSWORD`, …) or else HC_PG_PASSWORD.
    func configuration(for service: ServiceRole) -> PostgresConfiguration {
        configuration.logged(
            in: service,
            password: ProcessInfo.processInfo.environment[service.passwordVariable] ?? configuration.password
        )
    }

    /// The password comes from HC_PG_PASSWORD only, never from a flag (flags show in `ps`).
    var configuration: PostgresConfiguration {
        var configuration = PostgresConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.username = user
        configuration.password = Env.string("HC_PG_PASSWORD", PostgresConfiguration().password)
        configuration.database = database
        configuration.maximumConnections = maximumConnections
        configuration.keepAliveInterval = keepAliveSeconds > 0 ? .seconds(keepAliveSeconds) : nil
        configuration.statementTimeout = statementTimeoutSeconds > 0 ? .seconds(statementTimeoutSeconds) : nil
        configuration.lockTimeout = lockTimeoutSeconds > 0 ? .seconds(lockTimeoutSeconds) : nil
        configuration.idleInTransactionTimeout =
            idleInTransactionTimeoutSeconds > 0 ? .seconds(idleInTransactionTimeoutSeconds) : nil
        return configuration
    }
}

struct PseudonymOptions: ParsableArguments {
    @Option(
        name: .customLong("pseudonym-key-file"),
        help:
            "File holding the hex HMAC key for pseudonyms (HC_PSEUDONYM_KEY_FILE). HC_PSEUDONYM_KEY (hex) wins if set."
    )
    var keyFile: String = Env.string("HC_PSEUDONYM_KEY_FILE", ".local/pseudonym.key")

    /// Loads the key; with `createIfMissing`, a missing key file is created with a new random key
    /// (local setup only: a production key is provisioned, never generated by a service).
    func pseudonymizer(createIfMissing: Bool = false) throws -> Pseudonymizer {
        if let hex = ProcessInfo.processInfo.environment["HC_PSEUDONYM_KEY"] {
            return try Pseudonymizer(hexKey: hex)
        }
        let url = URL(fileURLWithPath: keyFile)
        if !FileManager.default.fileExists(atPath: url.path) {
            guard createIfMissing else {
                throw ValidationError(
                    "no pseudonym key: set HC_PSEUDONYM_KEY or create \(keyFile) (healthcode up creates a local one)"
                )
            }
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data((Pseudonymizer.generateHexKey() + "\n").utf8).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
        }
        return try Pseudonymizer(hexKey: String(contentsOf: url, encoding: .utf8))
    }
}

/// How long clients may take over requests, for every HTTP server the command runs.
struct HTTPOptions: ParsableArguments {
    @Option(
        name: .customLong("http-idle-timeout-seconds"),
        help: "Seconds a connection may stay silent before it is closed (HC_HTTP_IDLE_TIMEOUT_SECONDS)."
    )
    var idleTimeoutSeconds: Int = Env.int("HC_HTTP_IDLE_TIMEOUT_SECONDS", HTTPTimeouts().idleTimeout.wholeSeconds)
    @Option(
        name: .customLong("http-body-timeout-seconds"),
        help: "Seconds a request body may take to arrive before 408 (HC_HTTP_BODY_TIMEOUT_SECONDS)."
    )
    var bodyReadTimeoutSeconds: Int = Env.int(
        "HC_HTTP_BODY_TIMEOUT_SECONDS",
        HTTPTimeouts().bodyReadTimeout.wholeSeconds
    )

    var timeouts: HTTPTimeouts {
        var timeouts = HTTPTimeouts()
        timeouts.idleTimeout = .seconds(idleTimeoutSeconds)
        timeouts.bodyReadTimeout = .seconds(bodyReadTimeoutSeconds)
        return timeouts
    }

    func validate() throws {
        do { try ConfigurationError.check("http", timeouts.checks) } catch {
            throw error.flagError([
                "timeouts.idleTimeout": "--http-idle-timeout-seconds",
                "timeouts.bodyReadTimeout": "--http-body-timeout-seconds",
            ])
        }
    }
}

struct GatewayOptions: ParsableArguments {
    @Option(name: .customLong("gateway-host"), help: "Gateway listen address (HC_GATEWAY_HOST).")
    var host: String = Env.string("HC_GATEWAY_HOST", GatewayConfiguration().host)
    @Option(name: .customLong("gateway-port"), help: "Gateway port (HC_GATEWAY_PORT).")
    var port: Int = Env.int("HC_GATEWAY_PORT", GatewayConfiguration().port)
    @Option(name: .customLong("max-batch-events"), help: "Most events per ingest request (HC_MAX_BATCH_EVENTS).")
    var maximumBatchEvents: Int = Env.int("HC_MAX_BATCH_EVENTS", GatewayConfiguration().maximumBatchEvents)
    @Option(name: .customLong("max-body-bytes"), help: "Largest ingest request body (HC_MAX_BODY_BYTES).")
    var maximumBodyBytes: Int = Env.int("HC_MAX_BODY_BYTES", GatewayConfiguration().maximumBodyBytes)

    @Option(
        name: .customLong("max-concurrent-requests"),
        help: "Ingest requests handled at once; more get 503 (HC_GATEWAY_MAX_CONCURRENT_REQUESTS)."
    )
    var maximumConcurrentRequests: Int = Env.int(
        "HC_GATEWAY_MAX_CONCURRENT_REQUESTS",
        GatewayConfiguration().maximumConcurrentRequests
    )
    @Option(
        name: .customLong("publisher-rate"),
        help: "Events per second per publisher; faster gets 429 (HC_PUBLISHER_EVENTS_PER_SECOND)."
    )
    var publisherEventsPerSecond: Int = Env.int(
        "HC_PUBLISHER_EVENTS_PER_SECOND",
        GatewayConfiguration().publisherEventsPerSecond
    )
    @Option(name: .customLong("publisher-burst"), help: "Burst events per publisher (HC_PUBLISHER_BURST_EVENTS).")
    var publisherBurstEvents: Int = Env.int("HC_PUBLISHER_BURST_EVENTS", GatewayConfiguration().publisherBurstEvents)
    @Option(
        name: .customLong("delivery-timeout-seconds"),
        help: "Seconds Kafka may take to acknowledge an event before 503 (HC_GATEWAY_DELIVERY_TIMEOUT_SECONDS)."
    )
    var deliveryTimeoutSeconds: Int = Env.int(
        "HC_GATEWAY_DELIVERY_TIMEOUT_SECONDS",
        GatewayConfiguration().deliveryTimeout.wholeSeconds
    )
    @Option(
        name: .customLong("produce-linger-ms"),
        help: "Milliseconds an accepted event may wait to share a request to Kafka (HC_GATEWAY_PRODUCE_LINGER_MS)."
    )
    var produceLingerMilliseconds: Int = Env.int(
        "HC_GATEWAY_PRODUCE_LINGER_MS",
        GatewayConfiguration().produceLinger.wholeMilliseconds
    )
    @Option(
        name: .customLong("publisher-refresh-seconds"),
        help: "Seconds between re-reads of the publisher registry (HC_PUBLISHER_REFRESH_SECONDS)."
    )
    var publisherRefreshSeconds: Int = Env.int(
        "HC_PUBLISHER_REFRESH_SECONDS",
        GatewayConfiguration().publisherRefreshInterval.wholeSeconds
    )
    @Option(
        name: .customLong("gateway-public-url"),
        help: """
            The URL publishers reach this gateway at; names the deployment (HC_GATEWAY_PUBLIC_URL; default \
            http://<gateway-host>:<gateway-port>).
            """
    )
    var publicURL: String? = ProcessInfo.processInfo.environment["HC_GATEWAY_PUBLIC_URL"]
    @Option(
        name: .customLong("assertion-audience"),
        help: """
            The 'aud' publishers' JWT client assertions must carry (HC_ASSERTION_AUDIENCE; default the \
            gateway's public URL).
            """
    )
    var assertionAudience: String? = ProcessInfo.processInfo.environment["HC_ASSERTION_AUDIENCE"]
    @Option(
        name: .customLong("review-officer-quota"),
        help: """
            Overrides one review officer may apply per clock hour; more are held for a second officer \
            (HC_REVIEW_OVERRIDES_PER_OFFICER_PER_HOUR).
            """
    )
    var overridesPerOfficerPerHour: Int = Env.int(
        "HC_REVIEW_OVERRIDES_PER_OFFICER_PER_HOUR",
        GatewayConfiguration().overridesPerOfficerPerHour
    )
    @Option(
        name: .customLong("review-office-quota"),
        help: """
            Overrides one review office may apply per clock hour; more are held for a second officer \
            (HC_REVIEW_OVERRIDES_PER_OFFICE_PER_HOUR).
            """
    )
    var overridesPerOfficePerHour: Int = Env.int(
        "HC_REVIEW_OVERRIDES_PER_OFFICE_PER_HOUR",
        GatewayConfiguration().overridesPerOfficePerHour
    )
    @Option(
        name: .customLong("designation-hold-over"),
        help: """
            A designation that would turn more than this many people red is held for a second operator \
            (HC_DESIGNATION_HOLD_OVER).
            """
    )
    var designationHoldOver: Int = Env.int("HC_DESIGNATION_HOLD_OVER", GatewayConfiguration().designationHoldOver)
    @Option(
        name: .customLong("designation-impact-seconds"),
        help: """
            Seconds the gateway may spend counting a designation's impact; not done by then, it is held \
            (HC_DESIGNATION_IMPACT_SECONDS).
            """
    )
    var designationImpactSeconds: Int = Env.int(
        "HC_DESIGNATION_IMPACT_SECONDS",
        GatewayConfiguration().designationImpactBudget.wholeSeconds
    )
    @Option(
        name: .customLong("max-clock-skew-seconds"),
        help: """
            How far an event's time may lie ahead of the gateway's clock; it is still recorded when accepted \
            (HC_GATEWAY_MAX_CLOCK_SKEW_SECONDS).
            """
    )
    var maximumClockSkewSeconds: Int = Env.int(
        "HC_GATEWAY_MAX_CLOCK_SKEW_SECONDS",
        GatewayConfiguration().maximumClockSkew.wholeSeconds
    )

    func validate() throws {
        // The topic's own flags are checked with it (KafkaOptions); here only the gateway's.
        do { try configuration(topic: EventTopicConfiguration()).validate() } catch {
            throw error.flagError(Self.flags)
        }
    }

    /// The flag of each setting of ``GatewayConfiguration`` that has one.
    static let flags = [
        "port": "--gateway-port", "maximumBatchEvents": "--max-batch-events",
        "maximumBodyBytes": "--max-body-bytes", "maximumConcurrentRequests": "--max-concurrent-requests",
        "publisherEventsPerSecond": "--publisher-rate", "publisherBurstEvents": "--publisher-burst",
        "deliveryTimeout": "--delivery-timeout-seconds", "produceLinger": "--produce-linger-ms",
        "publisherRefreshInterval": "--publisher-refresh-seconds", "maximumClockSkew": "--max-clock-skew-seconds",
        "publicURL": "--gateway-public-url", "assertionAudience": "--assertion-audience",
        "overridesPerOfficerPerHour": "--review-officer-quota", "overridesPerOfficePerHour": "--review-office-quota",
    ]

    func configuration(topic: EventTopicConfiguration, timeouts: HTTPTimeouts = HTTPTimeouts()) -> GatewayConfiguration
    {
        var configuration = GatewayConfiguration()
        configuration.timeouts = timeouts
        configuration.bootstrapServers = topic.bootstrapServers
        configuration.topic = topic.topic
        configuration.host = host
        configuration.port = port
        configuration.maximumBatchEvents = maximumBatchEvents
        configuration.maximumBodyBytes = maximumBodyBytes
        configuration.maximumConcurrentRequests = maximumConcurrentRequests
        configuration.publisherEventsPerSecond = publisherEventsPerSecond
        configuration.publisherBurstEvents = publisherBurstEvents
        configuration.deliveryTimeout = .seconds(deliveryTimeoutSeconds)
        configuration.produceLinger = .milliseconds(produceLingerMilliseconds)
        configuration.publisherRefreshInterval = .seconds(publisherRefreshSeconds)
        configuration.publicURL = publicURL
        configuration.assertionAudience = assertionAudience
        configuration.overridesPerOfficerPerHour = overridesPerOfficerPerHour
        configuration.overridesPerOfficePerHour = overridesPerOfficePerHour
        configuration.maximumClockSkew = .seconds(maximumClockSkewSeconds)
        configuration.designationHoldOver = designationHoldOver
        configuration.designationImpactBudget = .seconds(designationImpactSeconds)
        return configuration
    }
}

struct APIOptions: ParsableArguments {
    @Option(name: .customLong("api-host"), help: "Query API listen address (HC_API_HOST).")
    var host: String = Env.string("HC_API_HOST", QueryAPIConfiguration().host)
    @Option(name: .customLong("api-port"), help: "Query API port (HC_API_PORT).")
    var port: Int = Env.int("HC_API_PORT", QueryAPIConfiguration().port)
    @Option(name: .customLong("issuer"), help: "This region's issuer id in signed codes (HC_CODE_ISSUER).")
    var issuer: String = Env.string("HC_CODE_ISSUER", QueryAPIConfiguration().issuer)
    @Option(
        name: .customLong("signing-keys-dir"),
        help: "Directory of the issuer's ES256 keys, <kid>.pem; the last signs (HC_CODE_SIGNING_KEYS_DIR)."
    )
    var signingKeysDirectory: String = Env.string(
        "HC_CODE_SIGNING_KEYS_DIR",
        QueryAPIConfiguration().signingKeysDirectory
    )
    @Option(
        name: .customLong("signed-code-lifetime-seconds"),
        help: "Longest validity of a signed code (HC_SIGNED_CODE_LIFETIME_SECONDS)."
    )
    var signedCodeLifetimeSeconds: Int = Env.int(
        "HC_SIGNED_CODE_LIFETIME_SECONDS",
        QueryAPIConfiguration().signedCodeLifetime.wholeSeconds
    )
    @Option(
        name: .customLong("trusted-issuers-file"),
        help: "JSON {issuer: JWKS URL or file} of regions whose codes are accepted (HC_TRUSTED_ISSUERS_FILE)."
    )
    var trustedIssuersFile: String?
    @Option(
        name: .customLong("code-reads-in-flight"),
        help: "Code reads per event loop at once before lookups queue and share one (HC_API_CODE_READS_IN_FLIGHT)."
    )
    var codeReadsInFlight: Int = Env.int("HC_API_CODE_READS_IN_FLIGHT", QueryAPIConfiguration().codeReadsInFlight)
    @Option(
        name: .customLong("code-cache-entries"),
        help: "Codes kept in memory, dropped when announced changed; 0 reads every lookup (HC_API_CODE_CACHE_ENTRIES)."
    )
    var codeCacheEntries: Int = Env.int("HC_API_CODE_CACHE_ENTRIES", QueryAPIConfiguration().codeCacheEntries)
    @Option(
        name: .customLong("code-cache-max-age-seconds"),
        help: "Longest a kept code answers before it is read again (HC_API_CODE_CACHE_MAX_AGE_SECONDS)."
    )
    var codeCacheMaximumAgeSeconds: Int = Env.int(
        "HC_API_CODE_CACHE_MAX_AGE_SECONDS",
        Int(QueryAPIConfiguration().codeCacheMaximumAge.components.seconds)
    )
    @Option(
        name: .customLong("api-read-timeout-ms"),
        help: "Milliseconds a request may wait on PostgreSQL before it is answered 503 (HC_API_READ_TIMEOUT_MS)."
    )
    var readTimeoutMilliseconds: Int = Env.int(
        "HC_API_READ_TIMEOUT_MS",
        QueryAPIConfiguration().readTimeout.wholeMilliseconds
    )

    @Option(
        name: .customLong("trusted-keys-refresh-seconds"),
        help: "How often the trusted issuers' keys are fetched again (HC_TRUSTED_KEYS_REFRESH_SECONDS)."
    )
    var trustedKeysRefreshSeconds: Int = Env.int(
        "HC_TRUSTED_KEYS_REFRESH_SECONDS",
        QueryAPIConfiguration().trustedKeysRefreshInterval.wholeSeconds
    )
    @Option(
        name: .customLong("holder-binding-iterations"),
        help: "PBKDF2 iterations of the holder binding's daily stretching (HC_HOLDER_BINDING_ITERATIONS)."
    )
    var holderBindingIterations: Int = Env.int(
        "HC_HOLDER_BINDING_ITERATIONS",
        QueryAPIConfiguration().holderBindingIterations
    )
    @Option(
        name: .customLong("minimum-holder-binding-iterations"),
        help: "Fewest holder-binding iterations a verified code may carry (HC_MINIMUM_HOLDER_BINDING_ITERATIONS)."
    )
    var minimumHolderBindingIterations: Int = Env.int(
        "HC_MINIMUM_HOLDER_BINDING_ITERATIONS",
        QueryAPIConfiguration().minimumHolderBindingIterations
    )
    @Option(
        name: .customLong("platform-rate"),
        help: "Requests/s of a client platform without its own limit (HC_PLATFORM_REQUESTS_PER_SECOND)."
    )
    var platformRate: Double = Env.double(
        "HC_PLATFORM_REQUESTS_PER_SECOND",
        QueryAPIConfiguration().platformRateLimit.requestsPerSecond
    )
    @Option(
        name: .customLong("platform-burst"),
        help: "Burst of a client platform without its own limit (HC_PLATFORM_BURST_REQUESTS)."
    )
    var platformBurst: Int = Env.int("HC_PLATFORM_BURST_REQUESTS", QueryAPIConfiguration().platformRateLimit.burst)
    @Option(
        name: .customLong("person-rate"),
        help: "Requests/s about one person, whoever asks (HC_PERSON_REQUESTS_PER_SECOND)."
    )
    var personRate: Double = Env.double(
        "HC_PERSON_REQUESTS_PER_SECOND",
        QueryAPIConfiguration().personRateLimit.requestsPerSecond
    )
    @Option(
        name: .customLong("person-burst"),
        help: "Burst of requests about one person (HC_PERSON_BURST_REQUESTS)."
    )
    var personBurst: Int = Env.int("HC_PERSON_BURST_REQUESTS", QueryAPIConfiguration().personRateLimit.burst)
    @Option(
        name: .customLong("unknown-people"),
        help: """
            refuse: no code for a person nothing is recorded about (404); green: the empty history's code \
            (HC_UNKNOWN_PEOPLE).
            """
    )
    var unknownPeople: UnknownPeople =
        UnknownPeople(rawValue: Env.string("HC_UNKNOWN_PEOPLE", "")) ?? QueryAPIConfiguration().unknownPeople

    func validate() throws {
        try configuration.validateAsFlags()
    }

    var configuration: QueryAPIConfiguration {
        var configuration = QueryAPIConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.issuer = issuer
        configuration.signingKeysDirectory = signingKeysDirectory
        configuration.signedCodeLifetime = .seconds(signedCodeLifetimeSeconds)
        configuration.trustedIssuersFile =
            trustedIssuersFile ?? ProcessInfo.processInfo.environment["HC_TRUSTED_ISSUERS_FILE"]
        configuration.codeReadsInFlight = codeReadsInFlight
        configuration.codeCacheEntries = codeCacheEntries
        configuration.codeCacheMaximumAge = .seconds(codeCacheMaximumAgeSeconds)
        configuration.readTimeout = .milliseconds(readTimeoutMilliseconds)
        configuration.trustedKeysRefreshInterval = .seconds(trustedKeysRefreshSeconds)
        configuration.holderBindingIterations = holderBindingIterations
        configuration.minimumHolderBindingIterations = minimumHolderBindingIterations
        configuration.maximumHolderBindingIterations = max(
            configuration.maximumHolderBindingIterations,
            holderBindingIterations
        )
        configuration.platformRateLimit = RequestRateLimit(requestsPerSecond: platformRate, burst: platformBurst)
        configuration.personRateLimit = RequestRateLimit(requestsPerSecond: personRate, burst: personBurst)
        configuration.unknownPeople = unknownPeople
        return configuration
    }

    /// ``configuration`` with the HTTP timeouts of the command's ``HTTPOptions``.
    func configuration(timeouts: HTTPTimeouts) -> QueryAPIConfiguration {
        var configuration = configuration
        configuration.timeouts = timeouts
        return configuration
    }
}

extension QueryAPIConfiguration {
    /// ``validate()``, with the error naming the command-line flag of the setting.
    func validateAsFlags() throws {
        do {
            try validate()
        } catch {
            // Settings without a flag cannot be wrong here; they keep the library's wording.
            let flag: String? =
                switch error.setting {
                case .port: "--api-port"
                case .signedCodeLifetime: "--signed-code-lifetime-seconds"
                case .codeReadsInFlight: "--code-reads-in-flight"
                case .maximumCodeReadBatch: nil
                case .codeCacheEntries: "--code-cache-entries"
                case .codeCacheMaximumAge: "--code-cache-max-age-seconds"
                case .readTimeout: "--api-read-timeout-ms"
                case .trustedKeysRefreshInterval: "--trusted-keys-refresh-seconds"
                case .holderBindingIterations: "--holder-binding-iterations"
                case .minimumHolderBindingIterations: "--minimum-holder-binding-iterations"
                case .platformRateLimit: "--platform-rate/--platform-burst"
                case .personRateLimit: "--person-rate/--person-burst"
                case .holderKeyCacheEntries: nil
                case .idleTimeout: "--http-idle-timeout-seconds"
                case .bodyReadTimeout: "--http-body-timeout-seconds"
                case .trustedKeysRetryDelay, .trustedKeysFetchTimeout, .maximumHolderBindingIterations,
                    .maximumConcurrentHolderChecks, .platformRefreshInterval:
                    nil
                }
            throw ValidationError(flag.map { "\($0) \(error.requirement)" } ?? error.description)
        }
    }
}

struct RulesOptions: ParsableArguments {
    @Option(name: .customLong("rules"), help: "Rule set file (HC_RULES; default projections/rules/reference-v1.json).")
    var rules: String?

    func ruleSet() throws -> RuleSet { try ruleSetFile().ruleSet }

    /// The rule set file's bytes, as read, and the rule set they hold.
    func ruleSetFile() throws -> (bytes: [UInt8], ruleSet: RuleSet) {
        let url: URL
        if let rules = rules ?? ProcessInfo.processInfo.environment["HC_RULES"] {
            url = URL(fileURLWithPath: rules)
        } else if let found = ProjectFiles.locate("projections/rules/reference-v1.json") {
            url = found
        } else {
            throw ValidationError("projections/rules/reference-v1.json not found; set HC_RULES or pass --rules FILE")
        }
        let bytes = try [UInt8](Data(contentsOf: url))
        do {
            return (bytes, try RuleSet.decode(bytes))
        } catch {
            throw ValidationError("\(url.path): \(error)")
        }
    }
}

/// Locates `projections/migrations` (HC_MIGRATIONS overrides).
func migrationsDirectory() throws -> URL {
    if let path = ProcessInfo.processInfo.environment["HC_MIGRATIONS"] {
        return URL(fileURLWithPath: path)
    }
    guard let url = ProjectFiles.locate("projections/migrations") else {
        throw ValidationError("projections/migrations not found; run from the repository or set HC_MIGRATIONS")
    }
    return url
}
