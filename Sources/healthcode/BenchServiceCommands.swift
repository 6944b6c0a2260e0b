import ArgumentParser
import Foundation
import HealthCodeAPI
import HealthCodeBenchmarks
import Logging

/// The repository root (scripts/infra.sh starts the private servers).
private func benchmarkRoot() throws -> URL {
    guard let root = ProjectFiles.locate("scripts/infra.sh")?.deletingLastPathComponent().deletingLastPathComponent()
    else {
        throw ValidationError("run from the repository: scripts/infra.sh not found")
    }
    return root
}

/// `healthcode bench ingest`: the gateway's events/s against the Kafka producer's own rate.
struct BenchIngest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Benchmark HTTP ingest (batches of 500) against the Kafka producer alone, on private servers."
    )

    @Option(help: "Events per request.") var batchSize = 500
    @Option(help: "Concurrent HTTP connections (and producer senders).") var connections = 8
    @Option(help: "Seconds per measurement.") var seconds = 10

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.ingest")
        logger.logLevel = .info
        var options = IngestBenchmark.Options(root: try benchmarkRoot())
        options.batchSize = batchSize
        options.connections = connections
        options.duration = .seconds(seconds)
        print(try await IngestBenchmark(options: options, logger: logger).run().line)
    }
}

/// `healthcode bench history`: a person with a long history against one with a short one.
struct BenchHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Benchmark lookup, explanation and projection for a person with a long history, on private servers."
    )

    @Option(help: "Events of the long history.") var events = 20_000
    @Option(help: "Lookups and one-event projections measured per person.") var samples = 50

    func validate() throws {
        guard (10...1_000_000).contains(events) else { throw ValidationError("--events must be 10...1000000") }
        guard (1...10_000).contains(samples) else { throw ValidationError("--samples must be 1...10000") }
    }

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.history")
        logger.logLevel = .info
        var options = HistoryBenchmark.Options(root: try benchmarkRoot())
        options.longEvents = events
        options.samples = samples
        print(try await HistoryBenchmark(options: options, logger: logger).run().summary)
    }
}

/// `healthcode bench impact`: the blast radius of a rule set over a population against reading every state once.
struct BenchImpact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "impact",
        abstract: "Benchmark `healthcode impact` over a population against one read of every state, on private servers."
    )

    @Option(help: "People with a state.") var people = 1_000_000
    @Option(help: "Events folded into each state.") var eventsPerPerson = 4
    @Option(help: "Evaluations at once (default: one per core).") var workers = ProcessInfo.processInfo
        .activeProcessorCount

    func validate() throws {
        guard (1_000...50_000_000).contains(people) else { throw ValidationError("--people must be 1000...50000000") }
        guard (1...100).contains(eventsPerPerson) else { throw ValidationError("--events-per-person must be 1...100") }
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be 1...256") }
    }

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.impact")
        logger.logLevel = .info
        var options = ImpactBenchmark.Options(root: try benchmarkRoot())
        options.people = people
        options.eventsPerPerson = eventsPerPerson
        options.workers = workers
        print(try await ImpactBenchmark(options: options, logger: logger).run().summary)
    }
}

/// `healthcode bench lookup`: code lookups/s and latency against pgbench's point-select ceiling.
struct BenchLookup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup",
        abstract: "Benchmark code lookups against pgbench's point-select ceiling on the same rows, on private servers."
    )

    @Option(help: "People with a stored code.") var people = 100_000
    @Option(help: "Concurrent HTTP connections and pgbench clients.") var connections = 8
    @Option(help: "Seconds per measurement.") var seconds = 10
    @Option(help: "Code reads each event loop runs at once before lookups queue and share a read.")
    var codeReadsInFlight = QueryAPIConfiguration().codeReadsInFlight
    @Option(help: "Codes the API keeps in memory in the measured run (a first run keeps none).")
    var codeCacheEntries = QueryAPIConfiguration().codeCacheEntries

    func validate() throws {
        var api = QueryAPIConfiguration()
        api.codeReadsInFlight = codeReadsInFlight
        api.codeCacheEntries = codeCacheEntries
        try api.validateAsFlags()
    }

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.lookup")
        logger.logLevel = .info
        var options = LookupBenchmark.Options(root: try benchmarkRoot())
        options.people = people
        options.connections = connections
        options.codeReadsInFlight = codeReadsInFlight
        options.codeCacheEntries = codeCacheEntries
        options.duration = .seconds(seconds)
        let result = try await LookupBenchmark(options: options, logger: logger).run()
        print(result.cacheLine)
        print(result.latencyLine)
        print(result.line)
    }
}

/// `healthcode bench freshness`: from a 202 to the changed code under a steady load, against the
/// projector's capacity measured in the same run.
struct BenchFreshness: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "freshness",
        abstract: """
            Benchmark how soon a code answers a new event (202 to changed code) under a steady load, \
            on private servers.
            """
    )

    @Option(help: "Seconds of steady load.") var seconds = 30
    @Option(help: "Events/s fed to the gateway (default: half the projector capacity measured first).")
    var rate: Int?
    @Option(help: "Events of the backlog that measures the projector's capacity.")
    var capacityEvents = FreshnessBenchmark.Options(root: URL(fileURLWithPath: "/")).capacityEvents

    func validate() throws {
        guard seconds >= 1 else { throw ValidationError("--seconds must be at least 1") }
        guard rate.map({ $0 >= 1 }) ?? true else { throw ValidationError("--rate must be at least 1") }
        guard capacityEvents >= 1_000 else { throw ValidationError("--capacity-events must be at least 1000") }
    }

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.freshness")
        logger.logLevel = .warning
        var options = FreshnessBenchmark.Options(root: try benchmarkRoot())
        options.duration = .seconds(seconds)
        options.rate = rate
        options.capacityEvents = capacityEvents
        let result = try await FreshnessBenchmark(options: options, logger: logger).run()
        print("bench freshness samples: \(result.latencies.count) probes, \(result.lost) never turned red within 30 s")
        print(result.line)
    }
}

/// `healthcode bench hostile`: hostile bodies refused while a legitimate publisher keeps posting.
struct BenchHostile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostile",
        abstract: """
            Benchmark how fast the gateway refuses hostile bodies and what they cost a legitimate publisher, \
            on private servers.
            """
    )

    @Option(help: "Seconds per measurement (alone, then under attack).") var seconds = 10

    func validate() throws {
        guard seconds >= 1 else { throw ValidationError("--seconds must be at least 1") }
    }

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.hostile")
        logger.logLevel = .warning
        var options = HostileBenchmark.Options(root: try benchmarkRoot())
        options.duration = .seconds(seconds)
        let result = try await HostileBenchmark(options: options, logger: logger).run()
        for line in result.kindLines { print(line) }
        print(result.line)
    }
}
