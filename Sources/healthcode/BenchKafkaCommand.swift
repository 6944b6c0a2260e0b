import ArgumentParser
import Foundation
import HealthCodeBenchmarks
import Logging

/// `healthcode bench kafka`: the Kafka layer against Python's confluent-kafka on a private Tansu broker.
struct BenchKafka: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Benchmark the Kafka layer against confluent-kafka (Python) on a private Tansu broker."
    )

    @Option(help: "Messages per side, phase and round (Tansu keeps ~400 B per message until it stops).")
    var messages = 200_000

    @Option(help: "Rounds; each side's best round is reported.")
    var rounds = 4

    @Option(help: "Value size in bytes.")
    var messageSize = 300

    @Option(help: "Partitions per topic.")
    var partitions = 8

    @Option(help: "Producer linger in milliseconds.")
    var lingerMs = 5

    @Option(help: "Concurrent Swift senders, each sending batches of 500 (like gateway requests).")
    var concurrency = 64

    @Option(help: "Repository root (holds .local/ and scripts/); default: found from the current directory.")
    var root: String?

    func run() async throws {
        var logger = Logger(label: "healthcode.bench.kafka")
        logger.logLevel = .info
        var options = KafkaBenchmark.Options(root: try repositoryRoot())
        options.messages = messages
        options.messageSize = messageSize
        options.partitions = partitions
        options.linger = .milliseconds(lingerMs)
        options.concurrency = concurrency
        options.rounds = rounds
        let result = try await KafkaBenchmark(options: options, logger: logger).run()
        for line in result.summary { print(line) }
    }

    private func repositoryRoot() throws -> URL {
        if let root { return URL(fileURLWithPath: root) }
        var directory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appending(path: "scripts/bench/kafka_python.py").path) {
                return directory
            }
            directory.deleteLastPathComponent()
        }
        throw ValidationError("run from the repository (scripts/bench/kafka_python.py not found) or pass --root")
    }
}
