import AsyncHTTPClient
import Foundation
import HealthCodeBenchmarks
import HealthCodeLocalServers
import HealthCodeTestSupport
import NIOCore
import NIOHTTP1
import Testing

/// PostgreSQL stopped under a running backbone: every read of the query API answers within its read
/// timeout (2 s), with a documented 503, `Retry-After` and a problem body; ingest goes on (Kafka holds
/// the events).
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(4)))
struct DatabaseOutageTests {
    @Test("with PostgreSQL stopped, every read answers 503 with Retry-After within the read timeout")
    func readsDuringAnOutage() async throws {
        try await ScratchServers.with(root: LocalInfrastructure.repositoryRoot) {
            try await readsDuringAnOutage(on: $0)
        }
    }

    private func readsDuringAnOutage(on servers: ScratchServers) async throws {
        let backbone = try await TestBackbone.make(
            partitions: 2,
            postgresPort: servers.postgresPort,
            kafkaBootstrapServers: servers.kafkaBootstrapServers
        )
        try await backbone.withRunningBackbone { gateway, api, probe in
            let kept = Events.testResult(
                id: "lab-kept",
                subject: "RAW-KEPT",
                time: Events.hoursAgo(2),
                result: "positive"
            )
            let other = Events.testResult(
                id: "lab-other",
                subject: "RAW-OTHER",
                time: Events.hoursAgo(2),
                result: "negative"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [kept, other]).status == 202)
            try await probe.waitUntilCaughtUp()
            let keptURL = api + "/v1/people/\(backbone.pseudonymizer.pseudonym(of: "RAW-KEPT"))/code"
            let otherURL = api + "/v1/people/\(backbone.pseudonymizer.pseudonym(of: "RAW-OTHER"))/code"
            #expect(try await Self.get(keptURL).status == 200, "read once, so kept")

            try await servers.run("stop-pg")
            for (name, url, method, body) in [
                ("a kept code", keptURL, HTTPMethod.GET, nil),
                ("another person's code", otherURL, .GET, nil),
                ("a past instant", otherURL + "?at=2020-04-03T10:00:00Z", .GET, nil),
                ("a code lookup", api + "/v1/code-lookups", .POST, #"{"subject":"RAW-OTHER"}"#),
            ] as [(String, String, HTTPMethod, String?)] {
                let started = ContinuousClock.now
                let answer = try await Self.get(url, method: method, body: body)
                let took = ContinuousClock.now - started
                #expect(answer.status == 503, "\(name): \(answer.status) \(answer.body)")
                #expect(answer.retryAfter.flatMap(Int.init).map { $0 >= 1 } == true, "\(name): Retry-After")
                #expect(answer.contentType == "application/problem+json", "\(name)")
                #expect(answer.body.contains("database-unavailable"), "\(name): \(answer.body)")
                #expect(took < .seconds(4), "\(name) answered after \(took)")
            }
            // Ingest does not need PostgreSQL for events already authorised: Kafka holds them.
            let more = Events.testResult(
                id: "lab-more",
                subject: "RAW-MORE",
                time: Events.hoursAgo(1),
                result: "negative"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [more]).status == 202)
            try await servers.run("start")
            // Back: the API answers again without a restart.
            let deadline = ContinuousClock.now + .seconds(30)
            var status = 0
            while status != 200, ContinuousClock.now < deadline {
                status = (try? await Self.get(otherURL).status) ?? 0
                if status != 200 { try await Task.sleep(for: .milliseconds(500)) }
            }
            #expect(status == 200, "answers again once PostgreSQL is back")
        }
    }

    static func get(
        _ url: String,
        method: HTTPMethod = .GET,
        body: String? = nil
    ) async throws -> (status: Int, retryAfter: String?, contentType: String?, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let (name, value) = TestBackbone.platformAuthorization(for: url) {
            request.headers.add(name: name, value: value)
        }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (
            Int(response.status.code), response.headers.first(name: "Retry-After"),
            response.headers.first(name: "Content-Type"), text
        )
    }
}
