import HealthCodePostgres
import Logging
import PostgresNIO
import ServiceLifecycle

/// Listens for announced code changes (``CodeChanges``) on a connection of its own and drops the
/// changed codes from a ``CodeCache``. The cache keeps codes only while this listener is live: it is
/// told once `LISTEN` is acknowledged, and told to drop everything whenever the connection is lost,
/// because announcements sent meanwhile are gone. It then connects again after `retryDelay`.
public struct CodeChangeListener: Service {
    private let cache: CodeCache
    private let postgres: PostgresClient.Configuration
    private let retryDelay: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - postgres: the server the projector writes to; one connection is used.
    ///   - retryDelay: wait before listening again after the connection is lost.
    public init(cache: CodeCache, postgres: PostgresClient.Configuration, retryDelay: Duration, logger: Logger) {
        var configuration = postgres
        configuration.options.minimumConnections = 1
        configuration.options.maximumConnections = 1
        self.cache = cache
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
        cache.deaf()
    }

    private func listen(on client: PostgresClient) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: CodeChanges.channel) { notifications in
                        cache.listening()
                        logger.debug("listening for code changes")
                        for try await notification in notifications {
                            cache.apply(CodeChanges.change(in: notification.payload))
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
            cache.deaf()
            try? await Task.sleep(for: retryDelay)
        }
    }
}
