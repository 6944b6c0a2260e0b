import Foundation
import HealthCodeBackbone
import Logging
import ServiceLifecycle

/// A logger for tests: warnings and up unless `HC_TEST_LOG_LEVEL` says otherwise.
public func testLogger(_ label: String = "healthcode-tests") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel =
        ProcessInfo.processInfo.environment["HC_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
    return logger
}

/// Runs `services` in one service group around `body`, then shuts them down gracefully; if `body`
/// throws, they are shut down and its error is rethrown.
public func withServices<Result: Sendable>(
    _ services: [any Service],
    _ body: () async throws -> Result
) async throws -> Result {
    try await Backbone.withServices(services, logger: testLogger(), body)
}
