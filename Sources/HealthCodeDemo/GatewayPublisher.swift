import AsyncHTTPClient
import Foundation
import HealthCodeCore
import Logging
import NIOCore
import Synchronization

/// Publishes CloudEvents to a HealthCode gateway over HTTP, in NDJSON batches, the way a
/// publisher's integration should: several requests in flight, and backpressure honoured. A batch
/// the gateway holds back (`429` over the publisher's rate, `503` when it is at capacity or Kafka
/// did not acknowledge) is sent again after the `Retry-After` it names; re-sending is safe, as
/// events are idempotent on `source`+`id`. The waits of one batch are bounded
/// (``maximumWait``), and every wait is reported through the progress callback.
public struct GatewayPublisher: Sendable {
    /// What a load achieved.
    public struct Report: Sendable {
        public var events: Int
        public var accepted: Int
        public var rejected: Int
        /// `429` answers: batches held back for the publisher's rate.
        public var rateLimited: Int
        /// `503` answers: batches held back while the gateway or Kafka was at capacity.
        public var unavailable: Int
        public var elapsed: Duration

        /// Batches sent again after the gateway held them back.
        public var retries: Int { rateLimited + unavailable }

        /// Accepted events per second.
        public var eventsPerSecond: Double {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return seconds > 0 ? Double(accepted) / seconds : 0
        }
    }

    /// Where a load stands, reported after every answer and whenever a batch starts or stops waiting.
    public struct Progress: Sendable {
        /// Events answered (accepted, duplicate or rejected).
        public var events: Int
        /// `429` answers so far.
        public var rateLimited: Int
        /// `503` answers so far.
        public var unavailable: Int
        /// Batches now waiting out a `Retry-After`.
        public var waiting: Int
        /// The longest `Retry-After` among the waiting batches.
        public var retryAfter: Duration

        /// Batches sent again after the gateway held them back.
        public var retries: Int { rateLimited + unavailable }
    }

    /// A batch the gateway refused as a whole, an unexpected answer, or a batch held back for
    /// longer than ``GatewayPublisher/maximumWait``.
    public struct PublishError: Error, CustomStringConvertible {
        public var status: Int
        public var detail: String
        public var description: String { "gateway answered \(status): \(detail)" }
    }

    private let endpoint: String
    private let credentials: [String: String]
    private let client: HTTPClient
    private let maximumWait: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - gatewayBaseURL: e.g. `http://127.0.0.1:8080`.
    ///   - credentials: each publisher's bearer credential (an API key), by publisher id; every
    ///     batch is sent with the credential of the `source` of its events.
    ///   - maximumWait: the longest one batch may be held back, summed over its `Retry-After`s,
    ///     before the load fails. Default 10 minutes.
    public init(
        gatewayBaseURL: String,
        credentials: [String: String],
        client: HTTPClient,
        maximumWait: Duration = .seconds(600),
        logger: Logger
    ) {
        self.endpoint = gatewayBaseURL + "/v1/events"
        self.credentials = credentials
        self.client = client
        self.maximumWait = maximumWait
        self.logger = logger
    }

    /// Publishes `batches` with at most `concurrency` requests in flight.
    public func publish(
        batches: [[String]],
        concurrency: Int,
        progress: @escaping @Sendable (Progress) -> Void = { _ in }
    ) async throws -> Report {
        let started = ContinuousClock.now
        let state = SharedLoadState()
        var report = Report(events: 0, accepted: 0, rejected: 0, rateLimited: 0, unavailable: 0, elapsed: .zero)
        try await withThrowingTaskGroup(of: (events: Int, accepted: Int, rejected: Int).self) { group in
            var next = 0
            func submit() {
                guard next < batches.count else { return }
                let batch = batches[next]
                next += 1
                group.addTask {
                    try await send(batch) { change in progress(state.update(change)) }
                }
            }
            for _ in 0..<max(1, concurrency) { submit() }
            while let done = try await group.next() {
                report.events += done.events
                report.accepted += done.accepted
                report.rejected += done.rejected
                progress(state.update { $0.answered(done.events) })
                submit()
            }
        }
        let totals = state.update { $0.progress }
        report.rateLimited = totals.rateLimited
        report.unavailable = totals.unavailable
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

    /// ``LoadState`` shared by a load's concurrent batches.
    final class SharedLoadState: Sendable {
        private let state = Mutex(LoadState())

        func update(_ change: (inout LoadState) -> Progress) -> Progress { state.withLock { change(&$0) } }
    }

    /// The progress of one load: answers counted, batches waiting and how long they wait.
    struct LoadState: Sendable {
        var progress = Progress(events: 0, rateLimited: 0, unavailable: 0, waiting: 0, retryAfter: .zero)
        var waits: [Int: Duration] = [:]
        var nextWait = 0

        mutating func answered(_ events: Int) -> Progress {
            progress.events += events
            return progress
        }

        /// A batch starts waiting `retryAfter` after a `status` answer; returns the wait's token.
        mutating func startWaiting(status: Int, retryAfter: Duration) -> (token: Int, progress: Progress) {
            if status == 429 { progress.rateLimited += 1 } else { progress.unavailable += 1 }
            nextWait += 1
            waits[nextWait] = retryAfter
            return (nextWait, update())
        }

        mutating func stopWaiting(_ token: Int) -> Progress {
            waits[token] = nil
            return update()
        }

        private mutating func update() -> Progress {
            progress.waiting = waits.count
            progress.retryAfter = waits.values.max() ?? .zero
            return progress
        }
    }

    private struct BatchAnswer: Decodable {
        var accepted: Int
        var rejected: Int
        var failed: Int
    }

    /// How long to wait before sending again, from a `Retry-After` header: its seconds, at least
    /// one and at most sixty (a gateway's hint, not an order to stall); one when absent or not a
    /// number of seconds.
    static func retryDelay(header: String?) -> Duration {
        guard let header, let seconds = Int(header.trimmingCharacters(in: .whitespaces)) else { return .seconds(1) }
        return .seconds(min(max(seconds, 1), 60))
    }

    /// Sends one batch until the gateway answers it, waiting out `429` and `503` answers.
    private func send(
        _ lines: [String],
        report: (_ change: (inout LoadState) -> Progress) -> Void
    ) async throws -> (events: Int, accepted: Int, rejected: Int) {
        var body = ByteBuffer()
        for line in lines {
            body.writeString(line)
            body.writeInteger(UInt8(ascii: "\n"))
        }
        var waited = Duration.zero
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
            let status = Int(response.status.code)
            switch status {
            case 202, 422:
                let answer = try JSONDecoder().decode(BatchAnswer.self, from: Data(payload.readableBytesView))
                return (lines.count, answer.accepted, answer.rejected)
            case 429, 503:
                let delay = Self.retryDelay(header: response.headers.first(name: "Retry-After"))
                guard waited + delay <= maximumWait else {
                    throw PublishError(
                        status: status,
                        detail: "a batch was still held back after waiting \(waited) (bound \(maximumWait))"
                    )
                }
                waited += delay
                logger.debug(
                    "gateway held a batch back; sending it again after Retry-After",
                    metadata: ["status": "\(status)", "retry-after": "\(delay)"]
                )
                var token = 0
                report { state in
                    let (started, progress) = state.startWaiting(status: status, retryAfter: delay)
                    token = started
                    return progress
                }
                defer { report { $0.stopWaiting(token) } }
                try await Task.sleep(for: delay)
            default:
                throw PublishError(status: status, detail: String(buffer: payload))
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

    /// Redraws the bar: events done of `total`, and the batches the gateway holds back, if any.
    public func update(_ progress: GatewayPublisher.Progress) {
        let done = progress.events
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Int(Double(done) / seconds) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var line = "\r\(label) [\(bar)] \(Int(fraction * 100))% \(done)/\(total) events, \(rate) ev/s"
        if progress.waiting > 0 {
            line += ", \(progress.waiting) batch(es) held back by the gateway, next try in \(progress.retryAfter)"
        } else if progress.retries > 0 {
            line += ", held back \(progress.rateLimited)× (429) \(progress.unavailable)× (503)"
        }
        // Blanks over the end of a longer line a previous redraw may have left.
        FileHandle.standardError.write(Data((line + String(repeating: " ", count: 12)).utf8))
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
