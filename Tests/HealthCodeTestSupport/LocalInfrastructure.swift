import Foundation
import HealthCodeLocalServers

/// Where the local PostgreSQL and Kafka-protocol broker started by `scripts/infra.sh` listen,
/// and whether tests that need them may run.
///
/// Integration tests use `.enabled(if: LocalInfrastructure.kafkaTestsEnabled)`: on a developer
/// machine without the servers they are skipped; with `CI=true` they always run, so a missing
/// server fails the run instead of silently skipping it.
public enum LocalInfrastructure {
    /// `true` when running under CI (`CI=true`).
    public static var isCI: Bool {
        ProcessInfo.processInfo.environment["CI"].map { $0 == "true" || $0 == "1" } ?? false
    }

    /// Kafka bootstrap servers (`HC_KAFKA_BOOTSTRAP`, default `127.0.0.1:19092`).
    public static var kafkaBootstrapServers: String {
        ProcessInfo.processInfo.environment["HC_KAFKA_BOOTSTRAP"] ?? "127.0.0.1:\(kafkaPort)"
    }

    /// Kafka port (`HC_KAFKA_PORT`, default 19092).
    public static var kafkaPort: Int {
        ProcessInfo.processInfo.environment["HC_KAFKA_PORT"].flatMap(Int.init) ?? 19092
    }

    /// PostgreSQL host (`HC_PG_HOST`, default `127.0.0.1`).
    public static var postgresHost: String {
        ProcessInfo.processInfo.environment["HC_PG_HOST"] ?? "127.0.0.1"
    }

    /// PostgreSQL port (`HC_PG_PORT`, default 54329).
    public static var postgresPort: Int {
        ProcessInfo.processInfo.environment["HC_PG_PORT"].flatMap(Int.init) ?? 54329
    }

    /// PostgreSQL role used by tests; it may create databases.
    public static let postgresUser = "healthcode"
    /// Password of ``postgresUser`` (the local cluster trusts loopback).
    public static let postgresPassword = "healthcode"

    /// Whether tests needing the broker run: always under CI, else only when it answers.
    public static var kafkaTestsEnabled: Bool { isCI || isListening(port: kafkaPort) }

    /// Whether tests needing PostgreSQL run: always under CI, else only when it answers.
    public static var postgresTestsEnabled: Bool { isCI || isListening(port: postgresPort) }

    /// Whether tests needing both servers run.
    public static var serversTestsEnabled: Bool { kafkaTestsEnabled && postgresTestsEnabled }

    /// A name unique to this test run, usable as a topic, group or database name.
    public static func uniqueName(_ prefix: String) -> String {
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        return "\(prefix)_\(suffix)"
    }

    /// The repository root (the directory holding `Package.swift`), found from this file.
    public static var repositoryRoot: URL {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }
}
