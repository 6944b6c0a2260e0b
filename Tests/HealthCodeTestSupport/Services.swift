import Foundation
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
    let group = ServiceGroup(
        configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [],
            logger: testLogger()
        )
    )
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let result = try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}
