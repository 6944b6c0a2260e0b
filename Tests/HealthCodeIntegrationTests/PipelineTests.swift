import AsyncHTTPClient
import Foundation
import HealthCodeCore
import HealthCodeTestSupport
import NIOCore
import PostgresNIO
import Testing

/// Events a test publishes, as the publishers would send them.
enum Events {
    static func testResult(id: String, subject: String, time: String, test: String = "pcr", result: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:test-bureau","type":"hc.test-result.v1","subject":"\#(subject)","time":"\#(time)","data":{"test":"\#(test)","result":"\#(result)","lab":"lab-1"}}"#
    }

    static func exposure(id: String, subject: String, time: String, kind: String = "close-contact") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:test-cdc","type":"hc.exposure.v1","subject":"\#(subject)","time":"\#(time)","data":{"kind":"\#(kind)"}}"#
    }

    static func travel(id: String, subject: String, time: String, from: String, to: String, arrivedAt: String) -> String
    {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:test-transport","type":"hc.travel.v1","subject":"\#(subject)","time":"\#(time)","data":{"mode":"train","from":"\#(from)","to":"\#(to)","arrivedAt":"\#(arrivedAt)"}}"#
    }

    static func declaration(id: String, subject: String, time: String, symptoms: String = "[]") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:test-residents","type":"hc.declaration.v1","subject":"\#(subject)","time":"\#(time)","data":{"symptoms":\#(symptoms)}}"#
    }

    static func riskArea(id: String, area: String, time: String, level: String, from: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:test-state-council","type":"hc.risk-area.v1","subject":"\#(area)","time":"\#(time)","data":{"level":"\#(level)","effectiveFrom":"\#(from)"}}"#
    }

    /// An RFC 3339 instant `hours` before now (events must be recent to drive today's code).
    static func hoursAgo(_ hours: Double) -> String {
        let date = Date().addingTimeInterval(-hours * 3600)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// HTTP calls to the gateway and the API.
enum HTTP {
    struct Answer {
        var status: Int
        var headers: [(String, String)]
        var json: [String: Any]
    }

    /// Posts the lines, one request per publisher (`source`; lines without one go with the first),
    /// each with that publisher's API key, and sums the answers.
    static func post(_ url: String, ndjson lines: [String]) async throws -> Answer {
        func source(of line: String) -> String? {
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["source"] as? String
        }
        let first = lines.lazy.compactMap(source).first ?? TestBackbone.testPublishers[0]
        var groups: [(source: String, lines: [String])] = []
        for line in lines {
            let owner = source(of: line) ?? first
            if let index = groups.firstIndex(where: { $0.source == owner }) {
                groups[index].lines.append(line)
            } else {
                groups.append((owner, [line]))
            }
        }
        var answers: [Answer] = []
        for group in groups {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-ndjson")
            request.headers.add(name: "Authorization", value: "Bearer \(TestBackbone.apiKey(of: group.source))")
            request.body = .bytes(ByteBuffer(string: group.lines.joined(separator: "\n")))
            answers.append(try await send(request))
        }
        guard answers.count > 1 else { return answers[0] }
        var merged = answers[0]
        merged.status = answers.map(\.status).max() ?? merged.status
        for key in ["accepted", "duplicate", "rejected", "failed"] {
            merged.json[key] = answers.reduce(0) { $0 + ($1.json[key] as? Int ?? 0) }
        }
        merged.json["results"] = answers.flatMap { $0.json["results"] as? [[String: Any]] ?? [] }
        return merged
    }

    /// GET `url`, as the test backbone's checkpoint platform for a code read.
    static func get(_ url: String) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        if let (name, value) = TestBackbone.platformAuthorization(for: url) {
            request.headers.add(name: name, value: value)
        }
        return try await send(request)
    }

    private static func send(_ request: HTTPClientRequest) async throws -> Answer {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] ?? [:]
        return Answer(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name, $0.value) },
            json: json
        )
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(5)))
struct PipelineTests {
    @Test("events sent to the gateway come back as codes from the API, raw identifiers stored nowhere")
    func publishAndQuery() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, api, probe in
            let designation = try await HTTP.post(
                gateway + "/v1/events",
                ndjson: [
                    Events.riskArea(
                        id: "area-1",
                        area: "420106",
                        time: Events.hoursAgo(200),
                        level: "high",
                        from: Events.hoursAgo(100)
                    )
                ]
            )
            #expect(designation.status == 202)
            try await probe.waitUntilCaughtUp()

            let lines = [
                Events.testResult(id: "t-a", subject: "RAW-PERSON-A", time: Events.hoursAgo(10), result: "positive"),
                Events.testResult(id: "t-b", subject: "RAW-PERSON-B", time: Events.hoursAgo(10), result: "negative"),
                Events.exposure(id: "x-c", subject: "RAW-PERSON-C", time: Events.hoursAgo(30)),
                Events.travel(
                    id: "v-d",
                    subject: "RAW-PERSON-D",
                    time: Events.hoursAgo(20),
                    from: "110101",
                    to: "420106",
                    arrivedAt: Events.hoursAgo(15)
                ),
                Events.declaration(id: "d-e", subject: "RAW-PERSON-E", time: Events.hoursAgo(5)),
            ]
            let answer = try await HTTP.post(gateway + "/v1/events", ndjson: lines)
            #expect(answer.status == 202)
            #expect(answer.json["accepted"] as? Int == 5)
            try await probe.waitUntilCaughtUp()

            let expected = [
                "RAW-PERSON-A": "red", "RAW-PERSON-B": "green", "RAW-PERSON-C": "red", "RAW-PERSON-D": "yellow",
                "RAW-PERSON-E": "green",
            ]
            for (raw, colour) in expected {
                let pseudonym = backbone.pseudonymizer.pseudonym(of: raw)
                let code = try await HTTP.get("\(api)/v1/people/\(pseudonym)/code")
                #expect(code.status == 200)
                #expect(code.json["status"] as? String == colour, "\(raw)")
                #expect(code.json["subject"] as? String == pseudonym)
            }
            let red = try await HTTP.get(
                "\(api)/v1/people/\(backbone.pseudonymizer.pseudonym(of: "RAW-PERSON-A"))/code"
            )
            let reasons = red.json["reasons"] as? [[String: Any]] ?? []
            #expect(reasons.first?["rule"] as? String == "positive-pcr")
            let ruleSet = red.json["ruleSet"] as? [String: Any]
            #expect(ruleSet?["hash"] as? String == backbone.ruleSet.contentHash)

            let leaked = try await backbone.withDatabase { client in
                try await count(
                    client,
                    """
                    SELECT (SELECT count(*) FROM event_archive WHERE body::text LIKE '%RAW-PERSON%' OR subject LIKE '%RAW-PERSON%')
                         + (SELECT count(*) FROM person_state WHERE subject LIKE '%RAW-PERSON%')
                         + (SELECT count(*) FROM person_code WHERE subject LIKE '%RAW-PERSON%')
                    """
                )
            }
            #expect(leaked == 0)
        }
    }

    @Test("invalid events are rejected one by one with the field that is wrong; none accepted is 422")
    func rejectsInvalidEvents() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        try await backbone.withRunningBackbone { gateway, _, _ in
            let invalid = Events.testResult(id: "bad", subject: "RAW-X", time: Events.hoursAgo(1), result: "maybe")
            let answer = try await HTTP.post(gateway + "/v1/events", ndjson: [invalid])
            #expect(answer.status == 422)
            let results = answer.json["results"] as? [[String: Any]] ?? []
            let errors = results.first?["errors"] as? [[String: Any]] ?? []
            #expect(results.first?["status"] as? String == "rejected")
            #expect(results.first?["id"] as? String == "bad")
            #expect(errors.first?["field"] as? String == "data.result")

            let mixed = try await HTTP.post(
                gateway + "/v1/events",
                ndjson: [
                    invalid,
                    Events.testResult(id: "good", subject: "RAW-X", time: Events.hoursAgo(1), result: "negative"),
                ]
            )
            #expect(mixed.status == 202)
            #expect(mixed.json["accepted"] as? Int == 1)
            #expect(mixed.json["rejected"] as? Int == 1)
        }
    }

    @Test("re-sending a batch changes nothing: archive, states, codes and decisions stay as they were")
    func resendingChangesNothing() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, _, probe in
            let lines = mixedHistory(events: 300, people: 50)
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: lines).status == 202)
            try await probe.waitUntilCaughtUp()
            let before = try await snapshot(backbone)
            #expect(before.archive == 300)

            let again = try await HTTP.post(gateway + "/v1/events", ndjson: lines)
            #expect(again.status == 202)
            #expect(again.json["duplicate"] as? Int == 300)
            try await probe.waitUntilCaughtUp()
            let after = try await snapshot(backbone)
            #expect(after == before)
        }
    }

    @Test("a projector stopped mid-stream and restarted neither loses nor repeats an effect")
    func projectorRestartMidStream() async throws {
        let backbone = try await TestBackbone.make()
        let people = 400
        let lines = mixedHistory(events: 4_000, people: people)
        // Publish everything first (gateway + projector), then wipe the projection so that the
        // restart test below replays the whole topic from position 0.
        try await backbone.withRunningBackbone { gateway, _, probe in
            for chunk in stride(from: 0, to: lines.count, by: 500) {
                #expect(
                    try await HTTP.post(gateway + "/v1/events", ndjson: Array(lines[chunk..<chunk + 500])).status == 202
                )
            }
            try await probe.waitUntilCaughtUp()
        }
        let reference = try await snapshot(backbone)
        #expect(reference.archive == 4_000)
        try await backbone.withDatabase { client in
            try await client.query(
                "TRUNCATE event_archive, area_event_archive, person_state, person_code, decision_log, consumer_offsets",
                logger: testLogger()
            )
        }

        // First run: cancelled (not a graceful shutdown) as soon as some batches were committed.
        try await backbone.runProjector(
            until: { client in
                try await count(client, "SELECT count(*) FROM event_archive") >= 200
            },
            gracefully: false
        )
        let partial = try await snapshot(backbone)
        #expect(partial.archive < 4_000, "the first run should stop mid-stream")

        // Second run to the end.
        try await backbone.runProjector(
            until: { client in
                let archived = try await count(client, "SELECT count(*) FROM event_archive")
                let applied = try await count(
                    client,
                    "SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets"
                )
                return archived >= 4_000 && applied >= 4_000
            },
            gracefully: true
        )
        let final = try await snapshot(backbone)
        #expect(final.archive == 4_000)
        #expect(final.states == reference.states)
        #expect(final.statuses == reference.statuses)
        #expect(final.decisionsPerPerson.values.allSatisfy { $0 >= 1 })
        #expect(final.repeatedDecisions == 0)
        // The code census moved only with committed codes: the truncation emptied it, the cancelled run's
        // transactions in flight rolled their counts back with their codes.
        let verdict = try await ProjectionVerifier.verify(backbone)
        #expect(verdict.censusMismatches.isEmpty, "\(verdict.censusMismatches.prefix(5))")
    }
}

/// Test results and declarations spread over `people` people and the last days.
func mixedHistory(events: Int, people: Int) -> [String] {
    (0..<events).map { index -> String in
        let subject = "P-\(index % people)"
        if index % 4 == 0 {
            let result = index % 12 == 0 ? "positive" : "negative"
            return Events.testResult(
                id: "r-\(index)",
                subject: subject,
                time: Events.hoursAgo(Double(index % 60)),
                result: result
            )
        }
        let symptoms = index % 5 == 0 ? #"["fever"]"# : "[]"
        return Events.declaration(
            id: "d-\(index)",
            subject: subject,
            time: Events.hoursAgo(Double(index % 50)),
            symptoms: symptoms
        )
    }
}

/// What the projection holds, for comparing before and after.
struct ProjectionSnapshot: Equatable {
    var archive: Int
    var states: [String: String]
    var statuses: [String: String]
    var decisions: Int
    var decisionsPerPerson: [String: Int]
    /// Decision-log rows whose new status equals the previous row's (an effect applied twice).
    var repeatedDecisions: Int
}

func snapshot(_ backbone: TestBackbone) async throws -> ProjectionSnapshot {
    try await backbone.withDatabase { client in
        let logger = testLogger()
        var states: [String: String] = [:]
        for try await (subject, state) in try await client.query(
            // Without the horizon of its last prune, which follows the projector's clock (PersonState.prune).
            "SELECT subject, (state::jsonb - 'prunedBefore')::text FROM person_state",
            logger: logger
        )
        .decode((String, String).self) {
            states[subject] = state
        }
        var statuses: [String: String] = [:]
        for try await (subject, status) in try await client.query(
            "SELECT subject, status FROM person_code",
            logger: logger
        )
        .decode((String, String).self) {
            statuses[subject] = status
        }
        var perPerson: [String: Int] = [:]
        for try await (subject, count) in try await client.query(
            "SELECT subject, count(*) FROM decision_log GROUP BY subject",
            logger: logger
        ).decode((String, Int64).self) {
            perPerson[subject] = Int(count)
        }
        return ProjectionSnapshot(
            archive: try await count(client, "SELECT count(*) FROM event_archive"),
            states: states,
            statuses: statuses,
            decisions: try await count(client, "SELECT count(*) FROM decision_log"),
            decisionsPerPerson: perPerson,
            repeatedDecisions: try await count(
                client,
                """
                SELECT count(*) FROM (
                    SELECT new_status, lag(new_status) OVER (PARTITION BY subject ORDER BY decision_id) AS previous,
                           valid_until, lag(valid_until) OVER (PARTITION BY subject ORDER BY decision_id) AS previous_until
                    FROM decision_log) d
                WHERE previous = new_status AND previous_until IS NOT DISTINCT FROM valid_until
                """
            )
        )
    }
}

func count(_ client: PostgresClient, _ sql: String) async throws -> Int {
    for try await value in try await client.query(PostgresQuery(unsafeSQL: sql), logger: testLogger()).decode(
        Int64.self
    ) {
        return Int(value)
    }
    return 0
}
