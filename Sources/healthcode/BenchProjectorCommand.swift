import ArgumentParser
import Foundation
import HealthCodeBenchmarks
import HealthCodeProjector
import Logging

/// `healthcode bench projector`: projection throughput against PostgreSQL's COPY ceiling.
struct BenchProjector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projector",
        abstract: "Benchmark the projector against PostgreSQL's COPY ceiling on private servers (fsync on)."
    )

    @Option(help: "People in the workload (about 10.5 events each).")
    var people = 30_000

    @Option(help: "Partitions of the topic.")
    var partitions = 8

    @Option(help: "Events per projector transaction.")
    var batchSize = ProjectorConfiguration().batchSize

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.projector")
        logger.logLevel = .info
        guard
            let root = ProjectFiles.locate("scripts/infra.sh")?.deletingLastPathComponent().deletingLastPathComponent()
        else {
            throw ValidationError("run from the repository: scripts/infra.sh not found")
        }
        var options = ProjectorBenchmark.Options(
            root: root,
            executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        )
        options.people = people
        options.partitions = partitions
        options.batchSize = batchSize
        let result = try await ProjectorBenchmark(options: options, logger: logger).run()
        print(result.summary)
    }
}

/// `healthcode bench rebuild`: a rebuild of the projection `bench projector` makes, against its live rate and
/// PostgreSQL's COPY ceiling, measured in the same run.
struct BenchRebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Benchmark a blue/green rebuild against the live projector and PostgreSQL's COPY ceiling (fsync on)."
    )

    @Option(help: "People in the workload (about 10.5 events each).")
    var people = 30_000

    @Option(help: "Partitions of the topic.")
    var partitions = 8

    @Option(help: "Tasks the rebuild folds with (default: the processors).")
    var workers = Rebuild.Configuration().workers

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.rebuild")
        logger.logLevel = .info
        guard
            let root = ProjectFiles.locate("scripts/infra.sh")?.deletingLastPathComponent().deletingLastPathComponent()
        else {
            throw ValidationError("run from the repository: scripts/infra.sh not found")
        }
        var projector = ProjectorBenchmark.Options(
            root: root,
            executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        )
        projector.people = people
        projector.partitions = partitions
        var options = RebuildBenchmark.Options(projector: projector)
        options.workers = workers
        let result = try await RebuildBenchmark(options: options, logger: logger).run()
        print(String(format: "rebuild build phase alone: %.0f ev/s", result.buildEventsPerSecond))
        print(result.summary)
    }
}
