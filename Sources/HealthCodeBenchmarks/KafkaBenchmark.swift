import Foundation
import HealthCodeKafka
import HealthCodeLocalServers
import Logging

/// `healthcode bench kafka`: the Swift Kafka layer side by side with Python's confluent-kafka, on the
/// same freshly started Tansu broker, same workload (300-byte values, 16-byte keys over 10 000 persons,
/// 8 partitions) and same producer settings (idempotent, acks=all, linger, no compression, murmur2).
///
/// Produce: the Swift side sends batches of 500 (a gateway request) from 64 concurrent tasks and counts
/// a message only once its delivery report arrived; Python calls `produce` per message with a delivery
/// callback, then `flush`. Consume: both learn the partitions' leaders (a watermark query), then read
/// their topic from the beginning with manual assignment, in batches of up to 2 048, touching every payload.
public struct KafkaBenchmark: Sendable {
    /// What to run.
    public struct Options: Sendable {
        /// Messages per side, phase and round. Tansu keeps ~400 B per message in memory until it stops:
        /// the whole run holds `2 × messages × rounds` of them.
        public var messages = 200_000
        /// Rounds; each side's best round is reported.
        public var rounds = 4
        /// Value size in bytes.
        public var messageSize = 300
        /// Partitions of each topic.
        public var partitions = 8
        /// Producer linger.
        public var linger: Duration = .milliseconds(5)
        /// Messages per Swift `send` call.
        public var batchSize = 500
        /// Concurrent Swift senders (gateway requests in flight).
        public var concurrency = 64
        /// The repository root (for `.local/bin/tansu`, `.local/venv/bin/python`, `scripts/bench`).
        public var root: URL

        /// Options with the defaults above.
        public init(root: URL) {
            self.root = root
        }
    }

    /// Messages per second of each side.
    public struct Rates: Sendable {
        /// The Swift layer's rate.
        public var swift: Double
        /// confluent-kafka's rate.
        public var python: Double
        /// `swift / python`.
        public var ratio: Double { python > 0 ? swift / python : 0 }
    }

    /// Both phases' rates.
    public struct Result: Sendable {
        /// Producing, until every delivery report arrived.
        public var produce: Rates
        /// Consuming from the beginning.
        public var consume: Rates

        /// The two summary lines.
        public var summary: [String] {
            [line("kafka-produce", produce), line("kafka-consume", consume)]
        }

        private func line(_ name: String, _ rates: Rates) -> String {
            "bench \(name): swift \(Int(rates.swift)) msg/s, python \(Int(rates.python)) msg/s, ratio "
                + String(format: "%.2f", rates.ratio)
        }
    }

    private let options: Options
    private let logger: Logger

    /// Creates the benchmark.
    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Starts Tansu on a free loopback port, runs ``Options/rounds`` rounds of both sides (alternating
    /// which side goes first, fresh topics each round), stops Tansu. Each side's best round counts: the
    /// machine is shared, and the best round is the one least disturbed by others.
    public func run() async throws -> Result {
        let broker = try TansuProcess.start(root: options.root, logger: logger)
        defer { broker.stop() }
        let servers = [broker.address]
        let admin = try KafkaAdmin(configuration: .init(bootstrapServers: servers), logger: logger)
        var best = Result(produce: Rates(swift: 0, python: 0), consume: Rates(swift: 0, python: 0))
        for round in 0..<max(1, options.rounds) {
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let swiftTopic = "bench-swift-\(suffix)"
            let pythonTopic = "bench-python-\(suffix)"
            try await admin.createTopics([
                KafkaTopicSpecification(name: swiftTopic, partitions: options.partitions),
                KafkaTopicSpecification(name: pythonTopic, partitions: options.partitions),
            ])
            let swiftFirst = round % 2 == 0
            var produce = Rates(swift: 0, python: 0)
            var consume = Rates(swift: 0, python: 0)
            for side in swiftFirst ? [true, false] : [false, true] {
                if side {
                    produce.swift = try await produceSwift(servers: servers, topic: swiftTopic)
                } else {
                    produce.python = try runPython("produce", servers: servers, topic: pythonTopic)
                }
            }
            for side in swiftFirst ? [true, false] : [false, true] {
                if side {
                    consume.swift = try await consumeSwift(servers: servers, topic: swiftTopic)
                } else {
                    consume.python = try runPython("consume", servers: servers, topic: pythonTopic)
                }
            }
            logger.info(
                "round \(round + 1)",
                metadata: [
                    "produce": "swift \(Int(produce.swift)), python \(Int(produce.python))",
                    "consume": "swift \(Int(consume.swift)), python \(Int(consume.python))",
                ]
            )
            best.produce.swift = max(best.produce.swift, produce.swift)
            best.produce.python = max(best.produce.python, produce.python)
            best.consume.swift = max(best.consume.swift, consume.swift)
            best.consume.python = max(best.consume.python, consume.python)
        }
        return best
    }

    private func produceSwift(servers: [String], topic: String) async throws -> Double {
        var configuration = KafkaProducerConfiguration(bootstrapServers: servers)
        configuration.linger = options.linger
        configuration.clientID = "bench-swift"
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let keys = (0..<10_000).map { Array(String(format: "%016d", $0).utf8) }
        let value = Self.value(size: options.messageSize)
        let total = options.messages
        let batchSize = options.batchSize
        let batches = (total + batchSize - 1) / batchSize
        let concurrency = options.concurrency
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await producer.run() }
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { senders in
                for sender in 0..<concurrency {
                    senders.addTask {
                        for batch in stride(from: sender, to: batches, by: concurrency) {
                            let first = batch * batchSize
                            let messages = (first..<min(total, first + batchSize)).map {
                                KafkaOutgoingMessage(topic: topic, key: keys[$0 % keys.count], value: value)
                            }
                            _ = try await producer.send(messages)
                        }
                    }
                }
                try await senders.waitForAll()
            }
            let elapsed = ContinuousClock.now - start
            producer.close()
            try await group.waitForAll()
            return Double(total) / elapsed.seconds
        }
    }

    private func consumeSwift(servers: [String], topic: String) async throws -> Double {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: servers)
        configuration.clientID = "bench-swift"
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        let total = options.messages
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            let partitions = (0..<Int32(options.partitions)).map { KafkaTopicPartition(topic: topic, partition: $0) }
            // Both sides learn the partitions' leaders first (else librdkafka waits out a 500 ms offset-query
            // timer, which would dominate short runs).
            _ = try await consumer.watermarks(for: partitions)
            let start = ContinuousClock.now
            try consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) }))
            var received = 0
            var valueBytes = 0
            for try await batch in consumer.batches {
                for message in batch { valueBytes += message.value.count }
                received += batch.count
                if received >= total { break }
            }
            let elapsed = ContinuousClock.now - start
            consumer.close()
            try await group.waitForAll()
            guard received >= total, valueBytes >= total * options.messageSize else {
                throw BenchmarkFailure("swift consume: \(received) of \(total) messages")
            }
            return Double(received) / elapsed.seconds
        }
    }

    private func runPython(_ mode: String, servers: [String], topic: String) throws -> Double {
        let process = Process()
        process.executableURL = options.root.appending(path: ".local/venv/bin/python")
        process.arguments = [
            options.root.appending(path: "scripts/bench/kafka_python.py").path, mode,
            "--bootstrap", servers.joined(separator: ","), "--topic", topic,
            "--messages", String(options.messages), "--size", String(options.messageSize),
            "--linger-ms",
            String(
                options.linger.components.seconds * 1000 + options.linger.components.attoseconds / 1_000_000_000_000_000
            ),
            "--partitions", String(options.partitions),
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let rate = object["rate"] as? Double
        else {
            throw BenchmarkFailure("python \(mode) failed (exit \(process.terminationStatus))")
        }
        return rate
    }

    static func value(size: Int) -> [UInt8] {
        let head = Array(#"{"event":""#.utf8)
        return head + Array(repeating: UInt8(ascii: "x"), count: max(0, size - head.count - 2)) + Array(#""}"#.utf8)
    }
}

/// A benchmark step that failed.
struct BenchmarkFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// A Tansu broker (memory storage) on a free loopback port, owned by the benchmark.
private final class TansuProcess: Sendable {
    let address: String
    private let process: Process

    private init(address: String, process: Process) {
        self.address = address
        self.process = process
    }

    static func start(root: URL, logger: Logger) throws -> TansuProcess {
        let port = try freePort()
        let address = "127.0.0.1:\(port)"
        let process = Process()
        process.executableURL = root.appending(path: ".local/bin/tansu")
        process.arguments = [
            "broker", "--listener-url", "tcp://\(address)", "--advertised-listener-url", "tcp://\(address)",
            "--storage-engine", "memory://tansu/",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let broker = TansuProcess(address: address, process: process)
        for _ in 0..<100 {
            if isListening(port: port) {
                logger.info("tansu started", metadata: ["address": "\(address)"])
                return broker
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        broker.stop()
        throw BenchmarkFailure("tansu did not listen on \(address)")
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still running after 5 s (Tansu may ignore SIGTERM).
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<50 where process.isRunning {
            Thread.sleep(forTimeInterval: 0.1)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            for _ in 0..<50 where process.isRunning {
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }
}
