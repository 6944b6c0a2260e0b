import AsyncHTTPClient
import Foundation
import HealthCodeCore
import Logging
import NIOCore
import ServiceLifecycle

/// Loads the demo population through the gateway, waits until the projector has caught up,
/// prints a summary with one red person, then stays up until the process shuts down (or returns
/// at once, with ``Configuration/exitAfterSummary``).
///
/// It drives the system only through its public interfaces: HTTP to the gateway and the query API,
/// plus two read-only probes (`caughtUp`, `statusCounts`) that the caller wires to Kafka and
/// PostgreSQL.
public struct DemoLoad: Service {
    /// Settings of the demo load.
    public struct Configuration: Sendable {
        /// People to generate; 0 loads nothing. Default 100 000.
        public var people: Int = 100_000
        /// Generator seed. Default 2020.
        public var seed: UInt64 = 2020
        /// Events per request. Default 500.
        public var batchSize: Int = 500
        /// Requests in flight. Default 4.
        public var concurrency: Int = 4
        /// Gateway base URL, e.g. `http://127.0.0.1:8080`.
        public var gatewayURL: String
        /// Query API base URL, e.g. `http://127.0.0.1:8081`.
        public var apiURL: String
        /// Longest wait for the projector to catch up. Default 10 minutes.
        public var projectionTimeout: Duration = .seconds(600)
        /// The API key of each demo publisher (``DemoPopulation/Publisher``), by publisher id;
        /// `healthcode up` registers them. Never logged. Default: none.
        public var credentials: [String: String] = [:]
        /// The longest one batch may be held back by the gateway (`429`/`503`, summed over its
        /// `Retry-After`s) before the load fails. Default 10 minutes.
        public var maximumWait: Duration = .seconds(600)
        /// Return after the summary instead of serving until shutdown (scripts, tests). Default `false`.
        public var exitAfterSummary = false
        /// The API key of a checkpoint platform, to read the summary's red person (every code read needs
        /// a reader credential). Never logged. Default: none (the summary shows the refusal).
        public var readerKey: String?
        /// Where a local user finds the reader key and the residents' key, for the summary's `curl` lines.
        public var readerKeyFile: String?
        public var residentKeyFile: String?
        /// Where a local user finds the demo analyst's key, to sign in to the web console. Default: none (no
        /// console line in the summary).
        public var analystKeyFile: String?

        public init(gatewayURL: String, apiURL: String) {
            self.gatewayURL = gatewayURL
            self.apiURL = apiURL
        }
    }

    private let configuration: Configuration
    private let pseudonymizer: Pseudonymizer
    private let client: HTTPClient
    private let ready: @Sendable () async throws -> Void
    private let caughtUp: @Sendable () async throws -> Bool
    private let statusCounts: @Sendable () async throws -> [CodeStatus: Int]
    private let now: @Sendable () -> Instant
    private let logger: Logger

    /// - Parameters:
    ///   - ready: returns once the gateway and the API accept requests.
    ///   - caughtUp: whether the projector has applied everything on Kafka.
    ///   - statusCounts: materialised codes by colour.
    ///   Both probes are asked again while they fail, up to ``Configuration/projectionTimeout``; their errors'
    ///   descriptions are logged, so they must not carry data.
    public init(
        configuration: Configuration,
        pseudonymizer: Pseudonymizer,
        client: HTTPClient,
        ready: @escaping @Sendable () async throws -> Void,
        caughtUp: @escaping @Sendable () async throws -> Bool,
        statusCounts: @escaping @Sendable () async throws -> [CodeStatus: Int],
        now: @escaping @Sendable () -> Instant,
        logger: Logger
    ) {
        self.configuration = configuration
        self.pseudonymizer = pseudonymizer
        self.client = client
        self.ready = ready
        self.caughtUp = caughtUp
        self.statusCounts = statusCounts
        self.now = now
        self.logger = logger
    }

    public func run() async throws {
        try await ready()
        ConsoleOutput.line("gateway: \(configuration.gatewayURL)  (POST /v1/events)")
        ConsoleOutput.line("api:     \(configuration.apiURL)  (GET /v1/people/{pseudonym}/code)")
        if configuration.analystKeyFile != nil {
            ConsoleOutput.line("console: \(configuration.apiURL)/console  (sign in with the demo analyst's key)")
        }
        if configuration.people > 0 {
            // Ctrl-C during the load stops it at once (a batch cut short is safe to send again:
            // events are idempotent), and the services behind it shut down after it.
            do {
                try await cancelWhenGracefulShutdown { try await load() }
            } catch is CancellationError where Task.isShuttingDownGracefully {
                ConsoleOutput.line("\ndemo: stopped during the load (shutdown requested)")
                return
            }
        } else {
            ConsoleOutput.line("demo: --demo-people 0, starting empty")
        }
        if configuration.exitAfterSummary {
            ConsoleOutput.line("demo done; stopping (--exit-after-summary)")
            return
        }
        ConsoleOutput.line("serving; press Ctrl-C to stop")
        try await gracefulShutdown()
    }

    private func load() async throws {
        let population = DemoPopulation(people: configuration.people, seed: configuration.seed, anchor: now())
        let publisher = GatewayPublisher(
            gatewayBaseURL: configuration.gatewayURL,
            credentials: configuration.credentials,
            client: client,
            maximumWait: configuration.maximumWait,
            logger: logger
        )

        // Designations first, so that travellers' presences meet them when their events are folded.
        let designations = try await publisher.publish(batches: [population.designations()], concurrency: 1)
        try await waitForProjection()

        var lines: [String] = []
        lines.reserveCapacity(configuration.people * 3)
        for index in 0..<configuration.people {
            lines.append(contentsOf: population.events(ofPerson: index))
        }
        // A batch is published by one publisher: group the events by their source.
        let bySource = Dictionary(grouping: lines) { GatewayPublisher.source(ofLine: $0) ?? "" }
        let batches = bySource.keys.sorted().flatMap { source in
            let group = bySource[source] ?? []
            return stride(from: 0, to: group.count, by: configuration.batchSize).map {
                Array(group[$0..<min($0 + configuration.batchSize, group.count)])
            }
        }
        let bar = ProgressBar(total: lines.count, label: "loading demo")
        let report = try await publisher.publish(
            batches: batches,
            concurrency: configuration.concurrency,
            progress: { bar.update($0) }
        )
        bar.finish()
        let projectionStarted = ContinuousClock.now
        try await waitForProjection()
        let projectionTime = ContinuousClock.now - projectionStarted
        try await printSummary(designations: designations, report: report, projectionTime: projectionTime)
    }

    private func waitForProjection() async throws {
        let deadline = ContinuousClock.now + configuration.projectionTimeout
        while try await !probe("whether the projector has caught up", until: deadline, caughtUp) {
            guard ContinuousClock.now < deadline else {
                throw DemoError(detail: "the projector did not catch up within \(configuration.projectionTimeout)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// A read-only probe, asked again (every 200 ms, with a warning) while it fails and `deadline` is ahead: a
    /// probe that fails once (a connection the server closed, a statement cancelled on a busy machine) must not
    /// end a load that succeeded. After the deadline its failure is the demo's.
    private func probe<Answer: Sendable>(
        _ question: String,
        until deadline: ContinuousClock.Instant,
        _ ask: @Sendable () async throws -> Answer
    ) async throws -> Answer {
        while true {
            do {
                return try await ask()
            } catch {
                guard ContinuousClock.now < deadline, !Task.isCancelled else { throw error }
                logger.warning("could not tell \(question); asking again", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func printSummary(
        designations: GatewayPublisher.Report,
        report: GatewayPublisher.Report,
        projectionTime: Duration
    ) async throws {
        let counts = try await probe(
            "the codes by colour",
            until: ContinuousClock.now + configuration.projectionTimeout,
            statusCounts
        )
        let subject = pseudonymizer.pseudonym(of: DemoPopulation.rawIdentifier(0))
        let url = "\(configuration.apiURL)/v1/people/\(subject)/code"
        var request = HTTPClientRequest(url: url)
        if let key = configuration.readerKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        let code = describe(codeJSON: Data(body.readableBytesView))
        ConsoleOutput.line(
            """

            ── HealthCode demo ─────────────────────────────────────────────
            published  \(report.accepted + designations.accepted) of \(report.events + designations.events) events \
            accepted (\(report.rejected + designations.rejected) rejected) in \(format(report.elapsed)) \
            → \(Int(report.eventsPerSecond)) events/s through the gateway
            held back  \(report.rateLimited + designations.rateLimited)× over the publishers' rate (429), \
            \(report.unavailable + designations.unavailable)× at capacity (503); each batch sent again after \
            Retry-After
            projected  caught up \(format(projectionTime)) after the last batch was accepted
            codes      green \(counts[.green] ?? 0), yellow \(counts[.yellow] ?? 0), red \(counts[.red] ?? 0)

            a red person: \(DemoPopulation.rawIdentifier(0)) → pseudonym \(subject)
            \(code)

            query it (as a checkpoint platform; every read is audited, see healthcode audit):
              curl -H "Authorization: Bearer $(cat \(configuration.readerKeyFile ?? "KEY-FILE"))" \(url)
            look a resident up (as the residents' platform) and verify the signed code with the holder:
              curl -H "Authorization: Bearer $(cat \(configuration.residentKeyFile ?? "KEY-FILE"))" \\
                -d '{"subject":"\(DemoPopulation.rawIdentifier(0))"}' \(configuration.apiURL)/v1/code-lookups
              curl -d '{"token":"…","holder":"\(DemoPopulation.rawIdentifier(0))"}' \(configuration.apiURL)/v1/code-verifications
            \(consoleLines(subject: subject))────────────────────────────────────────────────────────────────
            """
        )
    }

    /// How to see the red person in the web console, when `healthcode up` registered a demo analyst.
    private func consoleLines(subject: String) -> String {
        guard let file = configuration.analystKeyFile else { return "" }
        return """
            see it in the web console (sign in with the key in \(file) and a purpose; reads are audited):
              \(configuration.apiURL)/console/people?subject=\(subject)

            """
    }

    /// The API's code answer as lines for a person: status, each reason with its events, rule set.
    private func describe(codeJSON: Data) -> String {
        guard let code = try? JSONSerialization.jsonObject(with: codeJSON) as? [String: Any] else {
            return String(decoding: codeJSON, as: UTF8.self)
        }
        var lines = [
            "  status    \(code["status"] as? String ?? "?"), valid until \(code["validUntil"] as? String ?? "further notice")"
        ]
        for reason in code["reasons"] as? [[String: Any]] ?? [] {
            let events = (reason["events"] as? [[String: Any]] ?? []).map {
                "\($0["source"] as? String ?? "?") #\($0["id"] as? String ?? "?")"
            }
            lines.append(
                "  reason    \(reason["rule"] as? String ?? "?") (\(reason["colour"] as? String ?? "?"), "
                    + "until \(reason["until"] as? String ?? "further notice")) ← \(events.joined(separator: ", "))"
            )
        }
        if let ruleSet = code["ruleSet"] as? [String: Any] {
            lines.append(
                "  rule set  \(ruleSet["id"] as? String ?? "?") \(ruleSet["version"] as? String ?? "?") "
                    + "(\(ruleSet["hash"] as? String ?? "?"))"
            )
        }
        return lines.joined(separator: "\n")
    }

    private func format(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.1f s", seconds)
    }
}

/// The demo could not complete.
public struct DemoError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { "demo failed: \(detail)" }
}
