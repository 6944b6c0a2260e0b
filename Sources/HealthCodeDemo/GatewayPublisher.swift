import AsyncHTTPClient
import Foundation
import HealthCodeCore
import Logging
import NIOCore

/// Publishes CloudEvents to a HealthCode gateway over HTTP, in NDJSON batches, the way a
/// publisher's integration would: several requests in flight, and a retry of the whole batch when
/// the gateway answers 503 (re-sending is safe: events are idempotent on `source`+`id`).
public struct GatewayPublisher: Sendable {
    /// What a load achieved.
    public struct Report: Sendable {
        public var events: Int
        public var accepted: Int
        public var rejected: Int
        public var retries: Int
        public var elapsed: Duration

        /// Accepted events per second.
        public var eventsPerSecond: Double {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return seconds > 0 ? Double(accepted) / seconds : 0
        }
    }

    /// A batch the gateway refused as a whole, or an unexpected answer.
    public struct PublishError: Error, CustomStringConvertible {
        public var status: Int
        public var detail: String
        public var description: String { "gateway answered \(status): \(detail)" }
    }

    private let endpoint: String
    private let credentials: [String: String]
    private let client: HTTPClient
    private let logger: Logger

    /// - Parameters:
    ///   - gatewayBaseURL: e.g. `http://127.0.0.1:8080`.
    /// - Parameter credentials: each publisher's bearer credential (an API key), by publisher id;
    ///   every batch is sent with the credential of the `source` of its events.
    public init(gatewayBaseURL: String, credentials: [String: String], client: HTTPClient, logger: Logger) {
        self.endpoint = gatewayBaseURL + "/v1/events"
        self.credentials = credentials
        self.client = client
        self.logger = logger
    }

    /// Publishes `batches` with at most `concurrency` requests in flight; `progress` is called with
    /// the number of events done after each batch.
    public func publish(
        batches: [[String]],
        concurrency: Int,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> Report {
        let started = ContinuousClock.now
        var report = Report(events: 0, accepted: 0, rejected: 0, retries: 0, elapsed: .zero)
        try await withThrowingTaskGroup(of: (events: Int, accepted: Int, rejected: Int, retries: Int).self) { group in
            var next = 0
            func submit() {
                guard next < batches.count else { return }
                let batch = batches[next]
                next += 1
                group.addTask { try await send(batch) }
            }
            for _ in 0..<max(1, concurrency) { submit() }
            while let done = try await group.next() {
                report.events += done.events
                report.accepted += done.accepted
                report.rejected += done.rejected
                report.retries += done.retries
                progress(report.events)
                submit()
            }
        }
        report.elapsed = ContinuousClock.now - started
        return report
    }

    /// The `source` of an event line as the demo writes it (`"source":"…"`).
    public static func source(ofLine line: String) -> String? {
        guard let start = line.range(of: #""source":""#)?.upperBound,
            let end = line[start...].firstIndex(of: "\"")
        else { return nil }
        return String(line[start..<end])
    }

    private struct BatchAnswer: Decodable {
        var accepted: Int
        var rejected: Int
        var failed: Int
    }

    /// Sends one batch, retrying while the gateway answers 503 (up to 30 times).
    private func send(_ lines: [String]) async throws -> (events: Int, accepted: Int, rejected: Int, retries: Int) {
        var body = ByteBuffer()
        for line in lines {
            body.writeString(line)
            body.writeInteger(UInt8(ascii: "\n"))
        }
        var retries = 0
        while true {
            var request = HTTPClientRequest(url: endpoint)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-ndjson")
            if let credential = lines.first.flatMap(Self.source(ofLine:)).flatMap({ credentials[$0] }) {
                request.headers.add(name: "Authorization", value: "Bearer \(credential)")
            }
            request.body = .bytes(body)
            let response = try await client.execute(request, timeout: .seconds(60))
            let payload = try await response.body.collect(upTo: 16 << 20)
            switch response.status.code {
            case 202, 422:
                let answer = try JSONDecoder().decode(BatchAnswer.self, from: Data(payload.readableBytesView))
                return (lines.count, answer.accepted, answer.rejected, retries)
            case 503 where retries < 30:
                retries += 1
                let wait = response.headers.first(name: "Retry-After").flatMap(Int.init) ?? 1
                logger.debug("gateway unavailable, retrying batch", metadata: ["retry": "\(retries)"])
                try await Task.sleep(for: .seconds(wait))
            default:
                throw PublishError(status: Int(response.status.code), detail: String(buffer: payload))
            }
        }
    }
}

/// A one-line progress bar on standard error.
public struct ProgressBar: Sendable {
    private let total: Int
    private let label: String
    private let started = ContinuousClock.now

    public init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    /// Redraws the bar for `done` of `total`.
    public func update(_ done: Int) {
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Int(Double(done) / seconds) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = "\r\(label) [\(bar)] \(Int(fraction * 100))% \(done)/\(total) events, \(rate) ev/s"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Ends the bar's line.
    public func finish() {
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// Lines for the person running the command, written straight to standard output so that they
/// appear at once even when the output is a file or a pipe.
public enum ConsoleOutput {
    public static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
