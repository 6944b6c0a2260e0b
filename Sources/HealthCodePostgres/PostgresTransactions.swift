import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs `body` in one transaction; once it rolled back, what `body` threw is rethrown as it is (a store's
    /// refusal stays one), rather than wrapped in a `PostgresTransactionError`.
    func withTransactionRethrowing<Result: Sendable>(
        logger: Logger,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await withTransaction(logger: logger) { try await body($0) }
        } catch let error as PostgresTransactionError {
            if let bodyError = error.closureError, error.rollbackError == nil { throw bodyError }
            throw error
        }
    }
}
