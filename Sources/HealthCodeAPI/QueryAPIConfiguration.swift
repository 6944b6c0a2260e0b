/// Settings of the query API.
public struct QueryAPIConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on. Default 8081.
    public var port: Int = 8081
    /// How long designations read from PostgreSQL are reused before re-reading. Default 1 s.
    public var designationRefreshInterval: Duration = .seconds(1)

    /// The local defaults.
    public init() {}
}
