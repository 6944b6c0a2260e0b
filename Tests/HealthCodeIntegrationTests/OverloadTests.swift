import AsyncHTTPClient
import Foundation
import HealthCodeBackbone
import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import HealthCodePostgres
import HealthCodeTestSupport
import NIOCore
import PostgresNIO
import Synchronization
import Testing

/// What a load run saw: accepted event ids, refusals by status, latencies of accepted requests.
final class LoadRecord: Sendable {
    struct Position: Hashable, CustomStringConvertible {
        var partition: Int32
        var offset: Int64
        var description: String { "\(partition)/\(offset)" }
    }

    struct State {
        var accepted: [String] = []
        /// Where the gateway said each accepted event is (partition, offset).
        var positions: [String: Position] = [:]
        var statuses: [Int: Int] = [:]
        var acceptedLatencies: [Duration] = []
        var skipped = 0
        var outstanding = 0
        var sequence = 0
        var peakMegabytes = 0
    }

    let state = Mutex(State())

    func percentile(_ fraction: Double) -> Duration {
        let sorted = state.withLock { $0.acceptedLatencies }.sorted()
        guard !sorted.isEmpty else { return .zero }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}

/// The gateway driven at twice its measured capacity: it sheds what it cannot take (429/503),
/// loses nothing it accepted, duplicates nothing, and its memory stays bounded.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(6)))
struct OverloadTests {
    static let batchSize = 100
    static let source = TestBackbone.testPublishers[0]

    struct BatchAnswer: Decodable {
        struct Result: Decodable {
            var id: String?
            var status: String
            var partition: Int32?
            var offset: Int64?
        }
        var results: [Result]
    }

    /// Sends one batch of new events; records the outcome.
    static func send(
        _ client: HTTPClient,
        url: String,
        prefix: String = "load",
        sequence: Int,
        record: LoadRecord
    ) async {
        var body = ByteBuffer()
        for index in 0..<batchSize {
            let id = "\(prefix)-\(sequence)-\(index)"
            body.writeString(
                Events.testResult(
                    id: id,
                    subject: "LOAD-\(sequence % 1000)-\(index)",
                    time: "2020-04-03T08:00:00Z",
                    result: "negative"
                )
                    + "\n"
            )
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
        request.headers.add(name: "Authorization", value: "Bearer \(TestBackbone.apiKey(of: source))")
        request.body = .bytes(body)
        let started = ContinuousClock.now
        do {
            let response = try await client.execute(request, timeout: .seconds(60))
            let payload = try await response.body.collect(upTo: 4 << 20)
            let elapsed = ContinuousClock.now - started
            let status = Int(response.status.code)
            var accepted: [BatchAnswer.Result] = []
            if status == 202 {
                let answer = try JSONDecoder().decode(BatchAnswer.self, from: Data(payload.readableBytesView))
                accepted = answer.results.filter { $0.status == "accepted" && $0.id != nil }
            }
            record.state.withLock { state in
                state.statuses[status, default: 0] += 1
                if status == 202 {
                    state.accepted.append(contentsOf: accepted.compactMap(\.id))
                    for result in accepted {
                        if let id = result.id, let partition = result.partition, let offset = result.offset {
                            state.positions[id] = LoadRecord.Position(partition: partition, offset: offset)
                        }
                    }
                    state.acceptedLatencies.append(elapsed)
                }
            }
        } catch {
            record.state.withLock { $0.statuses[-1, default: 0] += 1 }
        }
    }

    /// Closed loop: `concurrency` clients sending back to back for `duration`; accepted events/s.
    static func measureCapacity(_ client: HTTPClient, url: String, concurrency: Int, duration: Duration) async -> Double
    {
        let record = LoadRecord()
        let deadline = ContinuousClock.now + duration
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        let sequence = record.state.withLock { state in
                            state.sequence += 1
                            return state.sequence
                        }
                        await send(client, url: url, prefix: "warm", sequence: sequence, record: record)
                    }
                }
            }
        }
        let accepted = record.state.withLock { $0.accepted.count }
        return Double(accepted) / (Double(duration.components.seconds))
    }

    static func residentMegabytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kilobytes / 1024
    }

    @Test("at twice its capacity for 30 s the gateway refuses with 429/503, loses and duplicates nothing accepted")
    func twiceCapacity() async throws {
        let backbone = try await TestBackbone.make(partitions: 4)
        let logger = testLogger()
        let client = PostgresClient(
            configuration: backbone.clientConfiguration(for: .gateway),
            backgroundLogger: logger
        )
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.bootstrapServers = backbone.topic.bootstrapServers
        configuration.topic = backbone.topic.topic
        configuration.maximumConcurrentRequests = 16
        configuration.publisherEventsPerSecond = 1_000_000
        configuration.publisherBurstEvents = 1_000_000
        let port = Mutex(0)
        let started = StartupSignal(components: 1)
        let gateway = try Gateway.build(
            configuration: configuration,
            pseudonymizer: backbone.pseudonymizer,
            stores: .postgres(client, configuration: configuration, ruleSet: backbone.ruleSet, logger: logger),
            onServerRunning: { bound in
                port.withLock { $0 = bound }
                started.ready()
            },
            logger: logger
        )
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)

        let record = LoadRecord()
        let (capacity, baselineMemory, peakMemory) = try await withServices([client] + gateway) {
            await started.wait()
            let url = "http://127.0.0.1:\(port.withLock { $0 })/v1/events"
            let capacity = await Self.measureCapacity(http, url: url, concurrency: 8, duration: .seconds(3))
            let baseline = Self.residentMegabytes()
            // Open loop at twice the capacity, bounded: at most `bound` requests outstanding; a send
            // that would exceed it is skipped (counted), so the generator itself cannot run away.
            let interval = Duration.seconds(Double(Self.batchSize) / (2 * capacity))
            let bound = 512
            let deadline = ContinuousClock.now + .seconds(30)
            var next = ContinuousClock.now
            var sequence = 0
            record.state.withLock { $0.peakMegabytes = baseline }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while ContinuousClock.now < deadline + .seconds(1) {
                        let current = Self.residentMegabytes()
                        record.state.withLock { $0.peakMegabytes = max($0.peakMegabytes, current) }
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
                while ContinuousClock.now < deadline {
                    next = next + interval
                    if next > ContinuousClock.now { try? await Task.sleep(until: next) }
                    let admitted = record.state.withLock { state -> Bool in
                        guard state.outstanding < bound else {
                            state.skipped += 1
                            return false
                        }
                        state.outstanding += 1
                        return true
                    }
                    guard admitted else { continue }
                    sequence += 1
                    let current = sequence
                    group.addTask {
                        await Self.send(http, url: url, sequence: current, record: record)
                        record.state.withLock { $0.outstanding -= 1 }
                    }
                }
            }
            return (capacity, baseline, record.state.withLock { $0.peakMegabytes })
        }

        let state = record.state.withLock { $0 }
        let offered = state.statuses.values.reduce(0, +) + state.skipped
        let p99 = record.percentile(0.99)
        print(
            """
            overload: capacity \(Int(capacity)) ev/s, offered \(offered * Self.batchSize / 30) ev/s for 30 s; \
            responses \(state.statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")); \
            generator skipped \(state.skipped); accepted p50 \(record.percentile(0.5)), p99 \(p99); \
            RSS \(baselineMemory) MB → peak \(peakMemory) MB
            """
        )
        #expect(state.statuses.keys.allSatisfy { [202, 429, 503].contains($0) }, "\(state.statuses)")
        #expect((state.statuses[429] ?? 0) + (state.statuses[503] ?? 0) > 0, "twice the capacity was never refused")
        #expect(state.skipped * 10 < offered, "the generator could not offer the load")
        #expect(peakMemory - baselineMemory < 512, "memory grew by \(peakMemory - baselineMemory) MB")

        // Every accepted event is in Kafka exactly once, and nothing else is.
        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: backbone.topic.bootstrapServers,
            groupID: LocalInfrastructure.uniqueName("overload-check")
        )
        consumerConfiguration.maxPollMessages = 5000
        let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)
        let partitions = (0..<Int32(backbone.topic.partitions)).map {
            KafkaTopicPartition(topic: backbone.topic.topic, partition: $0)
        }
        var inKafka: [String: Int] = [:]
        var idAt: [LoadRecord.Position: String] = [:]
        var highWatermarks: [Int32: Int64] = [:]
        var redelivered = 0
        var readToEnd = false
        var queriedEnds: [Int32: Int64] = [:]
        try await withServices([consumer]) {
            try consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaOffset.beginning) }))
            let ends = try await consumer.watermarks(for: partitions)
            for (partition, marks) in ends { highWatermarks[partition.partition] = marks.high }
            queriedEnds = highWatermarks
            // Tansu's ListOffsets answers the last batch's base offset + 1, short of the end; a fetch's
            // high watermark is exact. So a partition is read once it was fetched and read up to that.
            var fetched = Set<Int32>()
            var next: [Int32: Int64] = [:]
            var seen = Set<LoadRecord.Position>()
            for try await batch in consumer.batches {
                for message in batch {
                    let position = LoadRecord.Position(partition: message.partition, offset: message.offset)
                    guard seen.insert(position).inserted else {
                        redelivered += 1
                        continue
                    }
                    let json = String(decoding: message.value, as: UTF8.self)
                    if let start = json.range(of: #""id":"load-"#)?.lowerBound {
                        let idStart = json.index(start, offsetBy: 6)
                        let id = String(json[idStart..<json[idStart...].firstIndex(of: "\"")!])
                        inKafka[id, default: 0] += 1
                        idAt[position] = id
                    }
                }
                if batch.highWatermark >= 0 {
                    fetched.insert(batch.partition)
                    highWatermarks[batch.partition] = max(highWatermarks[batch.partition] ?? 0, batch.highWatermark)
                }
                next[batch.partition] = max(next[batch.partition] ?? 0, batch.nextOffset)
                readToEnd = highWatermarks.allSatisfy { partition, high in
                    high == 0 || (fetched.contains(partition) && next[partition, default: 0] >= high)
                }
                if readToEnd { break }
            }
        }
        #expect(readToEnd, "the consumer stopped before the end of every partition: \(highWatermarks)")
        let shortfall = highWatermarks.reduce(0) { $0 + $1.value - (queriedEnds[$1.key] ?? 0) }
        print("overload: read back to the fetched ends; the end-offset query fell short of them by \(shortfall)")
        #expect(redelivered == 0, "the consumer handed out \(redelivered) messages twice")
        try await http.shutdown()
        let accepted = state.accepted.filter { $0.hasPrefix("load-") }
        let acceptedIDs = Set(accepted)
        #expect(acceptedIDs.count == accepted.count)
        #expect(inKafka.count == accepted.count, "accepted \(accepted.count), in Kafka \(inKafka.count)")
        #expect(inKafka.values.allSatisfy { $0 == 1 }, "an accepted event is in Kafka more than once")
        // Set equality as its two halves, so that a failure names a few events rather than all of them:
        // nothing in Kafka that was not accepted here, and (`missing`, below) nothing accepted missing.
        let neverAccepted = inKafka.keys.filter { !acceptedIDs.contains($0) }
        #expect(
            neverAccepted.isEmpty,
            "\(neverAccepted.count) events in Kafka were never accepted, e.g. \(neverAccepted.prefix(10))"
        )
        let misplaced = accepted.filter { id in state.positions[id].flatMap { idAt[$0] } != id }
        #expect(misplaced.isEmpty, "\(misplaced.count) accepted events are not at the position the gateway answered")
        // Where the missing ones should be, by the gateway's answer, and what the broker holds there.
        let missing = accepted.filter { inKafka[$0] == nil }.prefix(10).map { id in
            let position = state.positions[id]
            let there = position.flatMap { idAt[$0] } ?? "nothing"
            let high = position.flatMap { highWatermarks[$0.partition] }.map(String.init) ?? "?"
            return "\(id) at \(position.map(String.init(describing:)) ?? "?") (high \(high)) holds \(there)"
        }
        #expect(missing.isEmpty, "accepted but not in Kafka: \(missing.joined(separator: "; "))")
    }
}
