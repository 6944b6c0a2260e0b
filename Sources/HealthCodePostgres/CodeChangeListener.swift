import HealthCodeCore
import Logging
import PostgresNIO
import ServiceLifecycle

/// Listens for announced code changes (``CodeChanges``) on a connection of its own and tells a
/// ``CodeChangeObserver`` (the query API's code cache) what changed. The observer may keep codes only
/// while this listener is live: it is told once `LISTEN` is acknowledged, and told it is deaf whenever
/// the connection is lost, because announcements sent meanwhile are gone. It then connects again after
/// `retryDelay`.
public struct CodeChangeListener: Service {
    private let observer: any CodeChangeObserver
    private let postgres: PostgresClient.Configuration
    private let retryDelay: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - postgres: the server the projector writes to; one connection is used.
    ///   - retryDelay: wait before listening again after the connection is lost.
    public init(
        observer: any CodeChangeObserver,
        postgres: PostgresClient.Configuration,
        retryDelay: Duration,
        logger: Logger
    ) {
        var configuration = postgres
        configuration.options.minimumConnections = 1
        configuration.options.maximumConnections = 1
        self.observer = observer
        self.postgres = configuration
        self.retryDelay = retryDelay
        self.logger = logger
    }

    /// Listens until graceful shutdown.
    public func run() async throws {
        let client = PostgresClient(configuration: postgres, backgroundLogger: logger)
        await withDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            await cancelWhenGracefulShutdown { await listen(on: client) }
            group.cancelAll()
        }
        observer.deaf()
    }

    private func listen(on client: PostgresClient) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: CodeChanges.channel) { notifications in
                        observer.listening()
                        logger.debug("listening for code changes")
                        for try await notification in notifications {
                            observer.apply(CodeChanges.change(in: notification.payload))
                        }
                    }
                }
            } catch {
                if Task.isCancelled { break }
                logger.warning(
                    "code change announcements lost; lookups read PostgreSQL until listening again",
                    metadata: ["error": "\(SafeErrorDescription(error))"]
                )
            }
            observer.deaf()
            try? await Task.sleep(for: retryDelay)
        }
    }
}
