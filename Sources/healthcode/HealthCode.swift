import ArgumentParser
import HealthCodePostgres
import NIOCore
import NIOPosix
import PostgresNIO

@main
struct HealthCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcode",
        abstract: "HealthCode: an event-sourced backbone for personal health codes.",
        subcommands: [
            UpCommand.self,
            GatewayCommand.self,
            IngestProcessorCommand.self,
            ProjectorCommand.self,
            APICommand.self,
            SetupCommand.self,
            MigrateCommand.self,
            PseudonymCommand.self,
            Publishers.self,
            Reviews.self,
            Rules.self,
            Impact.self,
            Approvals.self,
            Analysts.self,
            Platforms.self,
            Audit.self,
            Verify.self,
            DeadLetters.self,
            Evaluate.self,
            ExplainCommand.self,
            Evidence.self,
            RebuildCommand.self,
            Bench.self,
        ]
    )

    /// Runs the command; an HTTP-serving command first installs NIO's event loops as Swift
    /// concurrency's executor (see ``ServesHTTPOnEventLoops``). A PostgreSQL failure is told by its
    /// SQLSTATE and the server's message (``SafeErrorDescription``), never by PostgresNIO's generic text.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if command is any ServesHTTPOnEventLoops {
                NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            }
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: CommandFailure(error).reported)
        }
    }
}

/// A command's failure as the operator reads it: PostgreSQL errors by ``SafeErrorDescription`` (without the
/// query, its values or the server's detail); any other error as it is, so that help, usage and exit codes
/// keep their meaning.
struct CommandFailure: Error, CustomStringConvertible {
    let underlying: any Error

    init(_ error: any Error) { underlying = error }

    /// Runs `body`, its failure described safely (for a caller that logs it).
    static func describingSafely<Answer>(_ body: () async throws -> Answer) async throws -> Answer {
        do { return try await body() } catch { throw CommandFailure(error).reported }
    }

    var description: String { SafeErrorDescription(underlying).description }

    /// The error that `exit(withError:)` should see.
    var reported: any Error {
        underlying is PSQLError || underlying is PostgresTransactionError ? self : underlying
    }
}

/// A command whose work is answering HTTP requests: Swift concurrency runs its jobs on NIO's event
/// loops instead of a pool of its own, so a request no longer hops between the pool and an event loop
/// at each step (about a tenth more lookups a second). Nothing blocking runs there: librdkafka has
/// threads of its own, and the benchmarks wait for child processes on NIO's blocking pool.
///
/// The projector does not take it: a task stays on the event loop that enqueued it, so all of its
/// partition lanes would share one thread (`bench projector` measured about a fifth fewer events a
/// second that way); on the cooperative pool they use every core.
protocol ServesHTTPOnEventLoops {}

extension GatewayCommand: ServesHTTPOnEventLoops {}
extension APICommand: ServesHTTPOnEventLoops {}
extension UpCommand: ServesHTTPOnEventLoops {}
extension BenchIngest: ServesHTTPOnEventLoops {}
extension BenchLookup: ServesHTTPOnEventLoops {}
extension BenchHostile: ServesHTTPOnEventLoops {}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print ratios against a baseline measured in the same run.",
        subcommands: [
            BenchPolicyEval.self, BenchKafka.self, BenchProjector.self, BenchIngest.self, BenchLookup.self,
            BenchFreshness.self, BenchHostile.self, BenchHistory.self, BenchImpact.self, BenchRebuild.self,
            BenchInbound.self,
        ]
    )
}
