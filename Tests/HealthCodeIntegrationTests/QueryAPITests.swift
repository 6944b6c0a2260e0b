import AsyncHTTPClient
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import JWTKit
import NIOCore
import NIOHTTP1
import PostgresNIO
import Testing

/// One HTTP exchange with headers and a JSON answer.
private func exchange(
    _ url: String,
    method: HTTPMethod = .GET,
    headers: [(String, String)] = [],
    body: String? = nil
) async throws -> (status: Int, json: [String: Any], text: String) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if headers.isEmpty, let (name, value) = TestBackbone.platformAuthorization(for: url) {
        request.headers.add(name: name, value: value)
    }
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
    let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    return (Int(response.status.code), json, text)
}

/// The query API end to end: lookups with signed codes, analyst explanations and exports, audit.
@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(5)))
struct QueryAPITests {
    @Test("a code lookup hashes the raw identifier and returns the code with a signed code that verifies offline")
    func lookupWithSignedCode() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, api, probe in
            let positive = Events.testResult(
                id: "lab-1",
                subject: "RAW-LOOKUP",
                time: Events.hoursAgo(2),
                result: "positive"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
            try await probe.waitUntilCaughtUp()

            let lookup = try await exchange(api + "/v1/code-lookups", method: .POST, body: #"{"subject":"RAW-LOOKUP"}"#)
            #expect(lookup.status == 200)
            let code = lookup.json["code"] as? [String: Any]
            let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-LOOKUP")
            #expect(code?["subject"] as? String == pseudonym)
            #expect(code?["status"] as? String == "red")
            #expect(!lookup.text.contains("RAW-LOOKUP"))
            let token = try #require((lookup.json["signedCode"] as? [String: Any])?["token"] as? String)

            #expect(!token.contains(pseudonym))

            let jwks = try await exchange(api + "/.well-known/jwks.json")
            #expect(jwks.status == 200)
            let limits = HolderBindingLimits(iterations: 1000, minimumIterations: 1000)
            guard
                case .success(let verified) = await SignedCodeVerifier.verify(
                    token,
                    jwks: jwks.text,
                    holder: "RAW-LOOKUP",
                    limits: limits
                )
            else {
                Issue.record("the signed code does not verify against the published keys for its holder")
                return
            }
            #expect(verified.holderChecked)
            #expect(verified.claims.status == "red")
            #expect(verified.claims.iss.value == "urn:hc:issuer:local")
            #expect(verified.expiresAt - verified.issuedAt <= .seconds(300))
            let elsewhere = await SignedCodeVerifier.verify(token, jwks: jwks.text, holder: "RAW-OTHER", limits: limits)
            #expect((try? elsewhere.get()) == nil, "on another person's phone it fails")

            let verifiedByAPI = try await exchange(
                api + "/v1/code-verifications",
                method: .POST,
                body: #"{"token":"\#(token)","holder":"RAW-LOOKUP"}"#
            )
            #expect(verifiedByAPI.json["valid"] as? Bool == true)
            #expect(verifiedByAPI.json["status"] as? String == "red")
            #expect(verifiedByAPI.json["holderChecked"] as? Bool == true)

            let unknown = try await exchange(
                api + "/v1/code-lookups",
                method: .POST,
                body: #"{"subject":"NOBODY-AT-ALL"}"#
            )
            #expect(unknown.status == 404, "no code for an identifier nobody published about")
            let anonymous = try await exchange(
                api + "/v1/code-lookups",
                method: .POST,
                headers: [("X-Nothing", "1")],
                body: #"{"subject":"RAW-LOOKUP"}"#
            )
            #expect(anonymous.status == 401, "the residents' channel needs a platform key")
            let bad = try await exchange(api + "/v1/code-lookups", method: .POST, body: #"{"subject":""}"#)
            #expect(bad.status == 400)
        }
    }

    @Test("an event timed ahead of the gateway's clock turns the code red when it happens, with no other input")
    func eventTimedAheadEndsTheCodeWhenItHappens() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, api, probe in
            let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-AHEAD")
            let url = api + "/v1/people/\(pseudonym)/code"
            let lookup = #"{"subject":"RAW-AHEAD"}"#
            // A whole second 5 to 6 s ahead: inside the gateway's accepted skew (5 minutes).
            let happens = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 5).rounded(.up))
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            let time = formatter.string(from: happens)
            let positive = Events.testResult(id: "lab-ahead", subject: "RAW-AHEAD", time: time, result: "positive")
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
            try await probe.waitUntilCaughtUp()

            // Before it happens: green, ending when it happens, from the API, its kept copy and lookups.
            let before = try await exchange(url)
            #expect(before.json["status"] as? String == "green")
            #expect(before.json["validUntil"] as? String == time)
            let hits = probe.codeCache.statistics.hits
            #expect(try await exchange(url).json["validUntil"] as? String == time)
            #expect(probe.codeCache.statistics.hits == hits + 1, "the green code is kept in memory")
            let signed = try await exchange(api + "/v1/code-lookups", method: .POST, body: lookup)
            #expect((signed.json["code"] as? [String: Any])?["status"] as? String == "green")
            let expiresAt = (signed.json["signedCode"] as? [String: Any])?["expiresAt"] as? String
            #expect(expiresAt.flatMap { formatter.date(from: $0) }.map { $0 <= happens } == true)

            // After it happens: red within 2 s with nothing else published, everywhere.
            let wait = happens.timeIntervalSinceNow
            if wait > 0 { try await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
            let deadline = happens.addingTimeInterval(2)
            var answered: (api: Bool, lookup: Bool, stored: Bool) = (false, false, false)
            while !(answered.api && answered.lookup && answered.stored), Date() < deadline {
                if try await exchange(url).json["status"] as? String == "red" { answered.api = true }
                let code = try await exchange(api + "/v1/code-lookups", method: .POST, body: lookup).json["code"]
                if (code as? [String: Any])?["status"] as? String == "red" { answered.lookup = true }
                let stored = try await probe.client.query(
                    "SELECT status FROM person_code WHERE subject = \(pseudonym)",
                    logger: testLogger()
                )
                for try await status in stored.decode(String.self) where status == "red" { answered.stored = true }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(answered.api, "GET code answered red within 2 s of the event's time")
            #expect(answered.lookup, "POST /v1/code-lookups answered red within 2 s of the event's time")
            #expect(answered.stored, "the materialised code turned red within 2 s of the event's time")
        }
    }

    @Test("validUntil as known later: a code at a past instant ends when a later-timed known event happened")
    func validUntilAsKnownLater() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, api, probe in
            let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-HISTORY")
            let positive = Events.testResult(
                id: "lab-history",
                subject: "RAW-HISTORY",
                time: "2020-03-02T00:00:00Z",
                result: "positive"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
            try await probe.waitUntilCaughtUp()
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            let today = formatter.string(from: Date())
            let url = api + "/v1/people/\(pseudonym)/code?at=2020-03-01T12:00:00Z"
            let asKnownToday = try await exchange(url + "&knownAt=\(today)")
            #expect(asKnownToday.status == 200)
            #expect(asKnownToday.json["status"] as? String == "green")
            #expect(asKnownToday.json["validUntil"] as? String == "2020-03-02T00:00:00Z")
            let asKnownThen = try await exchange(url)
            #expect(asKnownThen.json["status"] as? String == "green")
            #expect(asKnownThen.json["validUntil"] is NSNull, "as known then, nothing ends the green code")
        }
    }

    @Test("a kept code follows every committed change, and nothing kept is answered while changes cannot be heard")
    func keptCodesFollowChanges() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, api, probe in
            let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-KEPT")
            let url = api + "/v1/people/\(pseudonym)/code"
            /// Asks until the API answers `status`; how long that took.
            func waitForStatus(_ status: String, within limit: Duration) async throws -> Duration {
                let clock = ContinuousClock()
                let start = clock.now
                while try await exchange(url).json["status"] as? String != status {
                    guard clock.now - start < limit else {
                        Issue.record("the API still answered a stale code after \(limit)")
                        return clock.now - start
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return clock.now - start
            }

            let positive = Events.testResult(
                id: "lab-kept",
                subject: "RAW-KEPT",
                time: Events.hoursAgo(2),
                result: "positive"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
            try await probe.waitUntilCaughtUp()
            _ = try await waitForStatus("red", within: .seconds(5))
            let before = probe.codeCache.statistics
            #expect(try await exchange(url).json["status"] as? String == "red")
            #expect(probe.codeCache.statistics.hits == before.hits + 1, "a repeated lookup is answered from memory")

            // The projector's commit announces the change: the kept red code goes at once, long before
            // its maximum age (30 s).
            let retraction =
                #"{"specversion":"1.0","id":"retract-kept","source":"urn:hc:publisher:test-bureau","type":"hc.retraction.v1","subject":"RAW-KEPT","time":"\#(Events.hoursAgo(1))","data":{"retracts":"lab-kept","reason":"wrong sample"}}"#
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [retraction]).status == 202)
            try await probe.waitUntilCaughtUp()
            let followed = try await waitForStatus("green", within: .seconds(5))
            #expect(followed < .seconds(5))

            // Cut the listener off, then change the code without an announcement: the API must have
            // dropped what it kept and read PostgreSQL until it listens again.
            let terminated = try await probe.client.query(
                """
                SELECT count(*) FROM (
                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                    WHERE datname = current_database() AND query ILIKE 'LISTEN%hc_code_changes%'
                ) AS t
                """
            )
            #expect(try await single(terminated) == 1)
            let review = CodeDecision(
                status: .yellow,
                validUntil: nil,
                reasons: [],
                ruleSetID: backbone.ruleSet.id,
                ruleSetVersion: backbone.ruleSet.version,
                ruleSetHash: backbone.ruleSet.contentHash
            )
            try await ProjectionStore(client: probe.client, logger: testLogger()).withTransaction { transaction in
                try await transaction.saveCodes(
                    [(pseudonym, review, nil)],
                    evaluatedAt: Instant.now(),
                    changed: [],
                    shard: .shared
                )
            }
            _ = try await waitForStatus("yellow", within: .seconds(10))
            // Once it listens again, it must not answer the green it kept before it was cut off.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while try await single(
                probe.client.query(
                    """
                    SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND query ILIKE 'LISTEN%hc_code_changes%'
                    """
                )
            ) == 0, clock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            for _ in 0..<3 { #expect(try await exchange(url).json["status"] as? String == "yellow") }
        }
    }

    /// The one count a query returns.
    private func single(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await value in rows.decode(Int64.self) { count = Int(value) }
        return count
    }

    @Test("concurrent code reads share round trips and every answer is the asker's own code")
    func concurrentCodeReads() async throws {
        let backbone = try await TestBackbone.make()
        try await backbone.withRunningBackbone { gateway, api, probe in
            // Every third person tested positive (red); the others negative (green).
            let events = (0..<30).map { index in
                Events.testResult(
                    id: "lab-many-\(index)",
                    subject: "RAW-MANY-\(index)",
                    time: Events.hoursAgo(3),
                    result: index % 3 == 0 ? "positive" : "negative"
                )
            }
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: events).status == 202)
            try await probe.waitUntilCaughtUp()
            let unknown = String(repeating: "0", count: 32)
            try await withThrowingTaskGroup(of: (index: Int, status: Int, subject: String?, colour: String?).self) {
                group in
                for round in 0..<300 {
                    let index = round % 31
                    let subject = index == 30 ? unknown : backbone.pseudonymizer.pseudonym(of: "RAW-MANY-\(index)")
                    group.addTask {
                        let answer = try await exchange(api + "/v1/people/\(subject)/code")
                        return (
                            index, answer.status, answer.json["subject"] as? String, answer.json["status"] as? String
                        )
                    }
                }
                var answered = 0
                for try await answer in group {
                    answered += 1
                    let index = answer.index
                    guard index < 30 else {
                        #expect(answer.status == 404, "nobody published about this pseudonym: no code")
                        continue
                    }
                    #expect(answer.status == 200)
                    #expect(answer.subject == backbone.pseudonymizer.pseudonym(of: "RAW-MANY-\(index)"))
                    #expect(answer.colour == (index % 3 == 0 ? "red" : "green"))
                }
                #expect(answered == 300)
            }
        }
    }

    @Test("explain and export need an analyst key and a purpose; every read is audited, the audit is insert-only")
    func analystReads() async throws {
        let backbone = try await TestBackbone.make()
        let key = AnalystAccess.generateKey()
        try await backbone.withDatabase { client in
            try await AnalystStore(client: client, logger: testLogger()).add(
                id: "analyst-7",
                apiKeySHA256: AnalystAccess.hash(key)
            )
        }
        let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-EXPLAIN")
        try await backbone.withRunningBackbone { gateway, api, probe in
            let lines = [
                Events.testResult(id: "neg", subject: "RAW-EXPLAIN", time: Events.hoursAgo(30), result: "negative"),
                Events.exposure(id: "contact", subject: "RAW-EXPLAIN", time: Events.hoursAgo(5)),
            ]
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: lines).status == 202)
            try await probe.waitUntilCaughtUp()

            let url = api + "/v1/people/\(pseudonym)/explain"
            #expect(try await exchange(url).status == 401)
            #expect(try await exchange(url, headers: [("Authorization", "Bearer hcak_nope")]).status == 401)
            #expect(try await exchange(url, headers: [("Authorization", "Bearer \(key)")]).status == 403)

            let credentials = [("Authorization", "Bearer \(key)"), ("X-HC-Purpose", "case review 2020-117")]
            let explain = try await exchange(url, headers: credentials)
            #expect(explain.status == 200)
            let timeline = explain.json["timeline"] as? [[String: Any]] ?? []
            #expect(timeline.map { $0["id"] as? String } == ["neg", "contact"])
            #expect(timeline.allSatisfy { $0["known"] as? Bool == true })
            let firing = explain.json["firingRules"] as? [[String: Any]] ?? []
            #expect(!firing.isEmpty)
            #expect(firing.allSatisfy { $0["since"] is String })
            let contactRules = timeline.last?["firingRules"] as? [String] ?? []
            #expect(!contactRules.isEmpty)
            let ruleSet = (explain.json["code"] as? [String: Any])?["ruleSet"] as? [String: Any]
            #expect((ruleSet?["hash"] as? String)?.hasPrefix("sha256:") == true)

            // As known before the contact was recorded, the contact does not count.
            let earlier = try await exchange(url + "?knownAt=\(Events.hoursAgo(10))", headers: credentials)
            let earlierTimeline = earlier.json["timeline"] as? [[String: Any]] ?? []
            #expect(earlierTimeline.map { $0["known"] as? Bool } == [false, false])

            let export = try await exchange(api + "/v1/people/\(pseudonym)/export", headers: credentials)
            #expect(export.status == 200)
            let tables = export.json["tables"] as? [String: Any] ?? [:]
            for table in ["event_archive", "person_state", "person_code", "decision_log", "analyst_audit"] {
                #expect(tables[table] != nil, "export misses \(table)")
            }
            #expect((tables["event_archive"] as? [Any])?.count == 2)
            #expect(!export.text.contains("RAW-EXPLAIN"))
            // Compactly stored rows read as before: whole events, readable states, the deciding rule set.
            let archived = tables["event_archive"] as? [[String: Any]] ?? []
            #expect(
                archived.compactMap { ($0["body"] as? [String: Any])?["id"] as? String }.sorted() == ["contact", "neg"]
            )
            #expect(archived.allSatisfy { ($0["body"] as? [String: Any])?["subject"] as? String == pseudonym })
            #expect(archived.allSatisfy { $0["recorded_time"] is String })
            let state = ((tables["person_state"] as? [[String: Any]])?.first?["state"] as? [String: Any]) ?? [:]
            #expect((state["exposures"] as? [[String: Any]])?.first?["kind"] as? String == "close-contact")
            let code = (tables["person_code"] as? [[String: Any]])?.first ?? [:]
            #expect((code["decision"] as? [String: Any])?["ruleSetID"] as? String == "reference-v1")
            #expect((code["rule_set_hash"] as? String)?.hasPrefix("sha256:") == true)
            #expect(code["rule_set"] == nil)
            let decisions = tables["decision_log"] as? [[String: Any]] ?? []
            #expect(!decisions.isEmpty)
            #expect(decisions.allSatisfy { ($0["decision"] as? [String: Any])?["ruleSetHash"] as? String != nil })
        }
        try await backbone.withDatabase { client in
            let entries = try await AnalystStore(client: client, logger: testLogger())
                .entries(subject: pseudonym, analyst: nil, limit: 10)
            #expect(entries.map(\.endpoint).sorted() == ["explain", "explain", "export"])
            #expect(entries.allSatisfy { $0.analyst == "analyst-7" && $0.purpose == "case review 2020-117" })
            await #expect(throws: (any Error).self) {
                try await client.query("DELETE FROM analyst_audit", logger: testLogger())
            }
        }
    }

    @Test("client platforms in PostgreSQL: added, listed, removed; a checkpoint's reads are in the audit trail")
    func platformsAndAudit() async throws {
        let backbone = try await TestBackbone.make()
        let removedKey = try await backbone.withDatabase { client in
            let store = ClientPlatformStore(client: client, logger: testLogger())
            let key = try await Backbone.registerPlatform(
                id: "urn:hc:platform:gone",
                kind: .checkpoint,
                rateLimit: RequestRateLimit(requestsPerSecond: 0.5, burst: 3),
                postgres: client,
                logger: testLogger()
            )
            await #expect(throws: RegistryError.self) {
                _ = try await Backbone.registerPlatform(
                    id: "urn:hc:platform:gone",
                    kind: .resident,
                    rateLimit: nil,
                    postgres: client,
                    logger: testLogger()
                )
            }
            let listed = try await store.all().first { $0.id == "urn:hc:platform:gone" }
            #expect(listed?.kind == .checkpoint)
            #expect(listed?.rateLimit == RequestRateLimit(requestsPerSecond: 0.5, burst: 3))
            #expect(listed?.apiKeySHA256 == ClientPlatformRegistry.hash(key))
            try await store.remove("urn:hc:platform:gone")
            #expect(try await store.all().first { $0.id == "urn:hc:platform:gone" }?.revokedAt != nil)
            await #expect(throws: RegistryError.self) { try await store.remove("urn:hc:platform:gone") }
            return key
        }
        let pseudonym = backbone.pseudonymizer.pseudonym(of: "RAW-AUDITED")
        try await backbone.withRunningBackbone { gateway, api, probe in
            let positive = Events.testResult(
                id: "lab-aud",
                subject: "RAW-AUDITED",
                time: Events.hoursAgo(2),
                result: "positive"
            )
            #expect(try await HTTP.post(gateway + "/v1/events", ndjson: [positive]).status == 202)
            try await probe.waitUntilCaughtUp()
            let url = api + "/v1/people/\(pseudonym)/code"
            #expect(try await exchange(url).json["status"] as? String == "red")
            #expect(try await exchange(url, headers: [("X-HC-Purpose", "border check 7")]).status == 401)
            let checkpoint = [
                ("Authorization", "Bearer \(TestBackbone.checkpointKey)"), ("X-HC-Purpose", "border check 7"),
            ]
            #expect(try await exchange(url, headers: checkpoint).status == 200)
            #expect(try await exchange(url, headers: [("Authorization", "Bearer \(removedKey)")]).status == 401)
            #expect(
                try await exchange(url, headers: [("Authorization", "Bearer \(TestBackbone.residentKey)")]).status
                    == 403
            )
        }
        try await backbone.withDatabase { client in
            let entries = try await AnalystStore(client: client, logger: testLogger())
                .entries(subject: pseudonym, analyst: nil, platform: TestBackbone.checkpointPlatform, limit: 10)
            #expect(entries.map(\.purpose) == ["border check 7", "checkpoint"])
            #expect(entries.allSatisfy { $0.analyst == nil && $0.endpoint == "code" })
            await #expect(throws: (any Error).self) {
                try await client.query("UPDATE analyst_audit SET platform_id = 'x'", logger: testLogger())
            }
            await #expect(throws: (any Error).self, "a row names exactly one reader") {
                try await client.query(
                    "INSERT INTO analyst_audit (subject, purpose, endpoint) VALUES ('s', 'p', 'code')",
                    logger: testLogger()
                )
            }
        }
    }
}
