import Logging
import Metrics
import Prometheus
import Synchronization

/// Bootstraps swift-log and swift-metrics once per process; only the executable does this.
enum Observability {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Logs to standard error at `level`; metrics go to a Prometheus registry, whose exposition the
    /// returned closure renders (served at `/metrics`).
    static func bootstrap(level: String) -> @Sendable () -> [UInt8] {
        let registry = self.registry.withLock { existing in
            if let existing { return existing }
            let logLevel = Logger.Level(rawValue: level) ?? .info
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = logLevel
                return handler
            }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            existing = registry
            return registry
        }
        return { registry.emitToBuffer() }
    }
}
