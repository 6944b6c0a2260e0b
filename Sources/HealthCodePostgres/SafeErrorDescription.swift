import PostgresNIO

/// Describes an error for logs without leaking data: for PostgreSQL errors the client error code,
/// the SQLSTATE and the server's message, never the query, its bound values or the server's detail
/// (which can quote row values).
public struct SafeErrorDescription: CustomStringConvertible, Sendable {
    public let description: String

    public init(_ error: any Error) {
        if let error = error as? PostgresTransactionError {
            let parts = [
                error.beginError.map { "begin: \(SafeErrorDescription($0))" },
                error.closureError.map { "\(SafeErrorDescription($0))" },
                error.commitError.map { "commit: \(SafeErrorDescription($0))" },
                error.rollbackError.map { "rollback: \(SafeErrorDescription($0))" },
            ]
            description = "transaction failed: " + parts.compactMap { $0 }.joined(separator: "; ")
        } else if let error = error as? PSQLError {
            var parts = ["postgres \(error.code)"]
            if let state = error.serverInfo?[.sqlState] { parts.append("sqlstate \(state)") }
            if let message = error.serverInfo?[.message] { parts.append(message) }
            if let underlying = error.underlying { parts.append("\(type(of: underlying))") }
            description = parts.joined(separator: ": ")
        } else {
            description = "\(error)"
        }
    }
}
