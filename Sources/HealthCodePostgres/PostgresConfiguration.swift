import HealthCodeCore
import PostgresNIO

/// Where and how HealthCode connects to PostgreSQL.
public struct PostgresConfiguration: Sendable, Hashable {
    /// Server host. Default `127.0.0.1` (the local cluster of `scripts/infra.sh`).
    public var host: String = "127.0.0.1"
    /// Server port. Default 54329.
    public var port: Int = 54329
    /// Role name. Default `healthcode`.
    public var username: String = "healthcode"
    /// Password; never logged. Default `healthcode` (the local cluster trusts loopback).
    public var password: String = "healthcode"
    /// Database name. Default `healthcode`.
    public var database: String = "healthcode"
    /// Upper bound of pooled connections. Default 8.
    public var maximumConnections: Int = 8
    /// Whether to require TLS. Default `false` (loopback).
    public var requireTLS: Bool = false
    /// How often an idle pooled connection runs `SELECT 1` to prove it is alive; `nil`: never. Default
    /// `nil`: HealthCode's pools are busy, and PostgresNIO (1.33) re-arms the keep-alive timer each time
    /// a connection returns to the pool, which cost a tenth of the code-lookup rate. A dead connection
    /// fails its next query and the pool replaces it.
    public var keepAliveInterval: Duration?
    /// Whether statements run with PostgreSQL's generic plan (`plan_cache_mode = force_generic_plan`)
    /// instead of one planned for each execution's values. Default `true`: every HealthCode statement
    /// reads or writes by key, so the values never change the best plan; but PostgreSQL prices the
    /// generic plan of a prepared `subject = ANY($1)` read (an array of unknown length) above a custom
    /// one and so planned the code-lookup read again at every execution: a third of its time in
    /// `bench lookup`, and about an eighth of the lookup rate.
    public var genericPlans = true
    /// Longest a statement may run before the server cancels it (`statement_timeout`); `nil`: no limit.
    /// Default 20 s: below the projector's transaction deadline (30 s), so that a statement the client
    /// gave up on is cancelled by the server rather than left running beside its retry.
    public var statementTimeout: Duration? = .seconds(20)
    /// Longest a statement waits for a lock before the server fails it (`lock_timeout`); `nil`: no
    /// limit. Default 10 s: a session holding a person's or a position's lock makes the waiting
    /// transaction fail and retry, and the projector reports that it is not progressing.
    public var lockTimeout: Duration? = .seconds(10)
    /// Longest a session may sit idle inside a transaction before the server ends it
    /// (`idle_in_transaction_session_timeout`); `nil`: no limit. Default 60 s: a client that
    /// abandoned a transaction cannot hold its locks for longer.
    public var idleInTransactionTimeout: Duration? = .seconds(60)

    /// The local defaults.
    public init() {}

    /// Refuses a setting outside what a client allows, before anything connects.
    public func validate() throws(ConfigurationError) {
        func positive(_ limit: Duration?) -> Bool { limit.map { $0 > .zero } ?? true }
        try ConfigurationError.check(
            "postgres",
            [
                (!host.isEmpty, "host", "must not be empty"),
                ((1...65_535).contains(port), "port", "must be between 1 and 65535"),
                (!username.isEmpty, "username", "must not be empty"),
                (!database.isEmpty, "database", "must not be empty"),
                (maximumConnections > 0, "maximumConnections", "must be at least 1"),
                (positive(keepAliveInterval), "keepAliveInterval", "must be more than 0 when set"),
                (positive(statementTimeout), "statementTimeout", "must be more than 0 when set (nil: none)"),
                (positive(lockTimeout), "lockTimeout", "must be more than 0 when set (nil: none)"),
                (
                    positive(idleInTransactionTimeout), "idleInTransactionTimeout",
                    "must be more than 0 when set (nil: none)"
                ),
            ]
        )
    }

    /// The PostgresNIO client configuration for these settings.
    public func clientConfiguration() -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host,
            port: port,
            username: username,
            password: password,
            database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable
        )
        // Every connection is kept open: a connection above the minimum would arm an idle-timeout
        // timer each time it returns to the pool.
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = maximumConnections
        configuration.options.keepAliveBehavior = keepAliveInterval.map { .init(frequency: $0) }
        var parameters: [(String, String)] = []
        if genericPlans { parameters.append(("plan_cache_mode", "force_generic_plan")) }
        for (name, limit) in [
            ("statement_timeout", statementTimeout), ("lock_timeout", lockTimeout),
            ("idle_in_transaction_session_timeout", idleInTransactionTimeout),
        ] {
            // PostgreSQL takes milliseconds; 0 turns the limit off.
            let milliseconds = limit.map {
                max(1, $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)
            }
            parameters.append((name, "\(milliseconds ?? 0)"))
        }
        configuration.options.additionalStartupParameters = parameters
        return configuration
    }
}

/// A description safe to log: no password.
extension PostgresConfiguration: CustomStringConvertible {
    public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }
}
