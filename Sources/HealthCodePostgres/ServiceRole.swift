/// The PostgreSQL login role each service uses. Migration 0013 creates them, each with only the grants its
/// service needs (projections/migrations/0013_service_roles.sql); the configured role (`healthcode` by
/// default) only migrates and administers (publishers, analysts, dead letters).
public enum ServiceRole: String, Sendable, CaseIterable {
    case gateway = "hc_gateway"
    case projector = "hc_projector"
    case api = "hc_api"

    /// The environment variable that holds the role's password (`HC_PG_GATEWAY_PASSWORD`, …). Without it
    /// the administering role's password is used, which suits clusters that trust loopback.
    public var passwordVariable: String {
        switch self {
        case .gateway: "HC_PG_GATEWAY_PASSWORD"
        case .projector: "HC_PG_PROJECTOR_PASSWORD"
        case .api: "HC_PG_API_PASSWORD"
        }
    }
}

extension PostgresConfiguration {
    /// The same server and settings, logged in as `role` with `password`.
    public func logged(in role: ServiceRole, password: String) -> PostgresConfiguration {
        var configuration = self
        configuration.username = role.rawValue
        configuration.password = password
        return configuration
    }
}
