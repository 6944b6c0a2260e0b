import AsyncHTTPClient
import Foundation
import HealthCodeLocalServers
import Logging
import NIOCore

/// `healthcode bench hostile`: how long the gateway takes to refuse each hostile body
/// (``HostileBody/all``) while a legitimate publisher keeps posting, and what the attack costs that
/// publisher: its p99 and rate under attack against the same load measured alone in the same run.
public struct HostileBenchmark: Sendable {
    /// Settings.
    public struct Options: Sendable {
        /// Length of each measurement (alone, then under attack). Default 10 s.
        public var duration: Duration = .seconds(10)
        /// The legitimate publisher's concurrent connections. Default 2.
        public var connections = 2
        /// Events per legitimate batch. Default 100.
        public var batchSize = 100
        /// Repository root (scripts/infra.sh, projections/migrations).
        public var root: URL

        public init(root: URL) { self.root = root }
    }

    /// What was measured.
    public struct Result: Sendable {
        /// Per kind of hostile body: the statuses answered and the slowest answer.
        public var refusals: [(kind: String, statuses: Set<Int>, expected: Int, slowest: Duration, sent: Int)]
        public var legitimateAlone: (rate: Double, p99: Duration)
        public var legitimateUnderAttack: (rate: Double, p99: Duration)

        /// The slowest refusal of any kind.
        public var slowest: Duration { refusals.map(\.slowest).max() ?? .zero }
        public var ratio: Double {
            legitimateAlone.rate > 0 ? legitimateUnderAttack.rate / legitimateAlone.rate : 0
        }
        /// One line per kind: `hostile <kind>: <statuses> (want <status>), slowest X ms of N`.
        public var kindLines: [String] {
            refusals.map { refusal in
                "hostile \(refusal.kind): \(refusal.statuses.sorted().map(String.init).joined(separator: "/")) "
                    + "(want \(refusal.expected)), slowest \(String(format: "%.0f", refusal.slowest.inMilliseconds)) ms "
                    + "of \(refusal.sent)"
            }
        }
        /// The last line: `bench hostile: slowest refusal X ms, legit p99 A ms (alone B ms), rate ratio R`.
        public var line: String {
            "bench hostile: slowest refusal \(String(format: "%.0f", slowest.inMilliseconds)) ms, "
                + "legit p99 \(String(format: "%.1f", legitimateUnderAttack.p99.inMilliseconds)) ms "
                + "(alone \(String(format: "%.1f", legitimateAlone.p99.inMilliseconds)) ms), "
                + "rate ratio \(String(format: "%.2f", ratio))"
        }
    }

    private let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    public func run() async throws -> Result {
        try await BenchBackbone.with(root: options.root, partitions: 4, logger: logger) { try await measure($0) }
    }

    private func measure(_ backbone: BenchBackbone) async throws -> Result {
        let key = try await backbone.registerPublisher("urn:hc:publisher:gd", eventTypes: ["hc.test-result.v1"])
        let gateway = try backbone.gateway()
        let batchSize = options.batchSize
        let script = try backbone.ingestScript(
            bodies: (0..<8).map { sequence in
                (0..<batchSize).map { IngestBenchmark.event(sequence, $0) }.joined(separator: "\n")
                    .replacingOccurrences(of: "urn:hc:publisher:bench", with: "urn:hc:publisher:gd")
            },
            key: key
        )
        let connections = options.connections
        let duration = options.duration
        return try await backbone.withServices(gateway.services) {
            let url = await gateway.eventsURL()
            _ = try await runWrk(script: script, url: url, connections: connections, duration: .seconds(2))
            let alone = try Self.legitimate(
                try await runWrk(script: script, url: url, connections: connections, duration: duration),
                batchSize: batchSize
            )
            async let attacked = runWrk(script: script, url: url, connections: connections, duration: duration)
            let refusals = try await Self.attack(url: url, key: key, for: duration)
            let underAttack = try Self.legitimate(try await attacked, batchSize: batchSize)
            return Result(refusals: refusals, legitimateAlone: alone, legitimateUnderAttack: underAttack)
        }
    }

    /// Events/s and p99 from wrk's output; every request must have been accepted.
    private static func legitimate(_ output: String, batchSize: Int) throws -> (rate: Double, p99: Duration) {
        guard let rate = LookupBenchmark.number(after: "Requests/sec:", in: output),
            let p99 = LookupBenchmark.milliseconds(after: "99%", in: output), !output.contains("Non-2xx")
        else {
            throw ScratchServerError(detail: "wrk failed or saw refusals: \(output.suffix(800))")
        }
        return (rate * Double(batchSize), p99)
    }

    /// Sends the hostile bodies one after another, in turn, until `duration` has passed.
    private static func attack(
        url: String,
        key: String,
        for duration: Duration
    ) async throws -> [(kind: String, statuses: Set<Int>, expected: Int, slowest: Duration, sent: Int)] {
        let bodies = HostileBody.all.map { ByteBuffer(string: $0.body) }
        var refusals = HostileBody.all.map {
            (kind: $0.kind, statuses: Set<Int>(), expected: $0.status, slowest: Duration.zero, sent: 0)
        }
        let deadline = ContinuousClock.now + duration
        repeat {
            for index in bodies.indices {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/x-ndjson")
                request.headers.add(name: "Authorization", value: "Bearer \(key)")
                request.body = .bytes(bodies[index])
                let started = ContinuousClock.now
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                _ = try await response.body.collect(upTo: 1 << 20)
                let elapsed = ContinuousClock.now - started
                refusals[index].statuses.insert(Int(response.status.code))
                refusals[index].slowest = max(refusals[index].slowest, elapsed)
                refusals[index].sent += 1
            }
        } while ContinuousClock.now < deadline
        return refusals
    }
}
