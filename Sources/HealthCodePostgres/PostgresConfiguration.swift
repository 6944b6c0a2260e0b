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

    /// The local defaults.
    public init() {}

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
        if genericPlans {
            configuration.options.additionalStartupParameters = [("plan_cache_mode", "force_generic_plan")]
        }
        return configuration
    }
}

/// A description safe to log: no password.
extension PostgresConfiguration: CustomStringConvertible {
    public var description: String { "postgres://\(username)@\(host):\(port)/\(database)" }
}
