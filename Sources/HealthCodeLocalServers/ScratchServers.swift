import Foundation
import HealthCodePostgres
import PostgresNIO
import Synchronization

/// A PostgreSQL cluster and a Kafka broker of one's own, in a temporary directory, on free loopback
/// ports, started with the project's scripts/infra.sh: for benchmarks that must not share the
/// machine's servers and for tests that restart or freeze a server while other tests run.
public struct ScratchServers: Sendable {
    /// The repository root (holds scripts/infra.sh).
    public let root: URL
    /// Where the servers keep their data.
    public let directory: URL
    public let postgresPort: Int
    public let kafkaPort: Int

    /// The broker's bootstrap address.
    public var kafkaBootstrapServers: String { "127.0.0.1:\(kafkaPort)" }

    /// Starts both servers (bootstrap.sh must have run: it installs them).
    public static func start(root: URL) async throws -> ScratchServers {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hc_servers_\(UUID().uuidString.prefix(8).lowercased())"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let infrastructure = ScratchServers(
            root: root,
            directory: directory,
            postgresPort: try freePort(),
            kafkaPort: try freePort()
        )
        try await infrastructure.run("start")
        return infrastructure
    }

    /// Starts both servers, runs `body` with them, and stops and removes them whatever `body` did.
    public static func with<Result: Sendable>(
        root: URL,
        _ body: (ScratchServers) async throws -> Result
    ) async throws -> Result {
        let servers = try await start(root: root)
        do {
            let result = try await body(servers)
            await servers.stop()
            return result
        } catch {
            await servers.stop()
            throw error
        }
    }

    /// Runs `scripts/infra.sh <command>` (start, restart-pg, freeze-kafka, thaw-kafka, reset…) on these servers.
    public func run(_ command: String) async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["HC_INFRA_DIR"] = directory.path
        environment["HC_PG_PORT"] = "\(postgresPort)"
        environment["HC_KAFKA_PORT"] = "\(kafkaPort)"
        let script = try ChildProcess.spawn(
            "/bin/bash",
            arguments: [root.appendingPathComponent("scripts/infra.sh").path, command],
            environment: environment
        )
        let status = await script.exitStatus()
        guard status == 0 else {
            throw ScratchServerError(detail: "scripts/infra.sh \(command) failed with status \(status)")
        }
    }

    /// A client configuration for `database` on this PostgreSQL server (user `healthcode`), with the
    /// settings the services use.
    public func postgresConfiguration(
        database: String,
        connections: Int,
        role: ServiceRole? = nil
    ) -> PostgresClient.Configuration {
        var configuration = PostgresConfiguration()
        configuration.port = postgresPort
        configuration.database = database
        configuration.maximumConnections = connections
        if let role { configuration = configuration.logged(in: role, password: configuration.password) }
        return configuration.clientConfiguration()
    }

    /// Stops both servers (a frozen broker is thawed first, so that it can stop) and removes their data.
    public func stop() async {
        try? await run("thaw-kafka")
        try? await run("reset")
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A server could not be started or changed.
public struct ScratchServerError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { detail }

    public init(detail: String) { self.detail = detail }
}

/// A `healthcode projector` process, as operators run it, that a benchmark measures and a test can
/// SIGKILL.
public final class ProjectorProcess: Sendable {
    private let child: Mutex<ChildProcess?> = Mutex(nil)
    private let executable: URL
    private let environment: [String: String]

    /// - Parameters:
    ///   - executable: the `healthcode` binary.
    ///   - settings: `HC_*` settings (bootstrap servers, topic, group, PostgreSQL port and database…).
    public init(executable: URL, settings: [String: String]) {
        var environment = ProcessInfo.processInfo.environment
        environment["HC_METRICS_PORT"] = "0"
        environment["HC_LOG_LEVEL"] = "error"
        environment.merge(settings) { _, setting in setting }
        self.executable = executable
        self.environment = environment
    }

    /// Starts the process (again, after a kill).
    public func start() throws {
        let child = try ChildProcess.spawn(executable.path, arguments: ["projector"], environment: environment)
        self.child.withLock { $0 = child }
    }

    /// Peak resident memory of the running process (VmHWM), in bytes.
    public func peakResidentBytes() -> Int? {
        guard let pid = child.withLock({ $0?.pid }),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1024
    }

    /// SIGKILL: no graceful shutdown, no leaving the group, transactions cut wherever they are.
    public func kill() async {
        await end(with: SIGKILL)
    }

    /// SIGTERM: graceful shutdown. Returns the exit status (0: shut down cleanly), or `nil` if the
    /// process was not running.
    @discardableResult
    public func stop() async -> Int32? {
        await end(with: SIGTERM)
    }

    @discardableResult
    private func end(with signal: Int32) async -> Int32? {
        guard
            let child = child.withLock({ child in
                defer { child = nil }
                return child
            })
        else { return nil }
        Glibc.kill(child.pid, signal)
        return await child.exitStatus()
    }
}

/// A child process started with `posix_spawn` and reaped with `waitpid` on a thread of its own:
/// waiting never blocks Swift's cooperative pool, and does not depend on SIGCHLD delivery.
struct ChildProcess: Sendable {
    let pid: pid_t

    /// Starts `path` with its standard output discarded (standard error is kept for diagnostics).
    static func spawn(_ path: String, arguments: [String], environment: [String: String]) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        // Only standard input, output and error: a server started by the script must not inherit this
        // process's sockets (a restarted PostgreSQL holding a client's connection keeps it half-open).
        // (glibc 2.34+ has posix_spawn_file_actions_addclosefrom_np; Swift's Glibc module does not export it.)
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard result == 0 else {
            throw ScratchServerError(detail: "could not start \(path): \(String(cString: strerror(result)))")
        }
        return ChildProcess(pid: pid)
    }

    /// Waits for the process to end; its exit status, or 128 + the signal that ended it.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let pid = self.pid
            Thread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                let exited = status & 0x7f == 0
                continuation.resume(returning: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f))
            }.start()
        }
    }
}
