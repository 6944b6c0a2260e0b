import ArgumentParser
import NIOCore
import NIOPosix

@main
struct HealthCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcode",
        abstract: "HealthCode: an event-sourced backbone for personal health codes.",
        subcommands: [
            UpCommand.self,
            GatewayCommand.self,
            ProjectorCommand.self,
            APICommand.self,
            SetupCommand.self,
            MigrateCommand.self,
            PseudonymCommand.self,
            Publishers.self,
            Analysts.self,
            Audit.self,
            Verify.self,
            DeadLetters.self,
            Evaluate.self,
            Bench.self,
        ]
    )

    /// Swift concurrency runs its jobs on NIO's event loops instead of a pool of its own: HTTP handlers,
    /// PostgreSQL queries and the services' tasks then share threads, so a request no longer hops between
    /// the pool and an event loop at each step. Nothing blocking runs there: librdkafka has threads of its
    /// own, and the benchmarks wait for child processes on NIO's blocking pool.
    static func main() async {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        await main(nil)
    }
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print ratios against a baseline measured in the same run.",
        subcommands: [BenchPolicyEval.self, BenchKafka.self, BenchProjector.self, BenchIngest.self, BenchLookup.self]
    )
}
