import PostgresNIO

/// Describes an error for logs without leaking data: for PostgreSQL errors the client error code,
/// the SQLSTATE and the server's message, never the query, its bound values or the server's detail
/// (which can quote row values).
public struct SafeErrorDescription: CustomStringConvertible, Sendable {
    public let description: String

    public init(_ error: any Error) {
        if let error = error as? PSQLError {
            var parts = ["postgres \(error.code)"]
            if let state = error.serverInfo?[.sqlState] { parts.append("sqlstate \(state)") }
            if let message = error.serverInfo?[.message] { parts.append(message) }
            if let underlying = error.underlying { parts.append("\(type(of: underlying)): \(underlying)") }
            description = parts.joined(separator: ": ")
        } else {
            description = "\(error)"
        }
    }
}
