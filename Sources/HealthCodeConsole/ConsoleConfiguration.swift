import HealthCodeCore

/// Settings of the web console (served by the query API under `/console`).
public struct ConsoleConfiguration: Sendable, Equatable {
    /// Whether the API serves the console. Default `true`.
    public var enabled = true
    /// A session ends after this long without a request. Default 30 minutes.
    public var sessionIdleTimeout: Duration = .seconds(30 * 60)
    /// A session ends this long after sign-in, however busy. Default 8 hours.
    public var sessionLifetime: Duration = .seconds(8 * 3600)
    /// Sessions kept at once; past it the least recently seen ends. Default 10 000.
    public var maximumSessions = 10_000
    /// Whether the session cookie is `Secure` (sent over HTTPS only). Default `false`: the local stack
    /// serves plain HTTP; set it (`--console-secure-cookies`) wherever the console is reached through TLS.
    public var secureCookies = false
    /// A publisher whose latest event is older than this is shown as a stale feed. Default 15 minutes.
    public var staleFeedAfter: Duration = .seconds(15 * 60)
    /// A projector that has not reported for this long is shown as silent. Default 1 minute.
    public var silentProjectorAfter: Duration = .seconds(60)
    /// How far back the dashboard's charts go. Default 24 hours.
    public var dashboardWindow: Duration = .seconds(24 * 3600)

    public init() {}

    /// Every setting out of bounds, as (setting, requirement).
    public var problems: [(setting: String, requirement: String)] {
        var problems: [(String, String)] = []
        if sessionIdleTimeout <= .zero { problems.append(("sessionIdleTimeout", "must be more than 0")) }
        if sessionLifetime < sessionIdleTimeout {
            problems.append(("sessionLifetime", "must be at least sessionIdleTimeout"))
        }
        if maximumSessions < 1 { problems.append(("maximumSessions", "must be at least 1")) }
        if staleFeedAfter <= .zero { problems.append(("staleFeedAfter", "must be more than 0")) }
        if silentProjectorAfter <= .zero { problems.append(("silentProjectorAfter", "must be more than 0")) }
        if dashboardWindow < .seconds(3600) { problems.append(("dashboardWindow", "must be at least 1 hour")) }
        return problems
    }
}
