import Foundation
import HTTPTypes
import HealthCodeAPI
import HealthCodeCore
import HealthCodeTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// Every route of the query API and every refusal, in process through Hummingbird's test client, on
/// in-memory stores (``InMemoryQueryStores``): no PostgreSQL.
@Suite struct QueryAPIRouterTests {
    /// The API's clock: now, in whole seconds (signed codes are verified against the wall clock).
    static let now = Instant(microsecondsSinceEpoch: Instant.now().microsecondsSinceEpoch / 1_000_000 * 1_000_000)
    static let analystKey = "hcak_" + String(repeating: "ab", count: 32)
    static let purpose = HTTPField.Name("X-HC-Purpose")!

    struct Fixture {
        let client: any TestClientProtocol
        let stores: InMemoryQueryStores
        let pseudonymizer: Pseudonymizer
        let ruleSet: RuleSet
        let codeCache: CodeCache
        /// A person with a positive PCR taken a day before ``QueryAPIRouterTests/now``.
        let positive: String
        /// `Authorization` of the registered checkpoint platform (a reader).
        let reader: HTTPFields
        /// `Authorization` of the registered residents' platform.
        let resident: HTTPFields
    }

    /// Runs `body` against a query API on fresh in-memory stores, with a 300 ms read timeout, a
    /// checkpoint and a residents' platform, and holder bindings of 1000 iterations, on `base`'s other
    /// settings.
    func withAPI(
        _ base: QueryAPIConfiguration = QueryAPIConfiguration(),
        _ body: @Sendable (Fixture) async throws -> Void
    ) async throws {
        var logger = Logger(label: "api-router-tests")
        logger.logLevel = .error
        let stores = InMemoryQueryStores()
        let pseudonymizer = try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey())
        let keys = FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("hc_router_keys"))
        defer { try? FileManager.default.removeItem(at: keys) }
        var configuration = base
        configuration.signingKeysDirectory = keys.path
        configuration.readTimeout = .milliseconds(300)
        configuration.holderBindingIterations = 1000
        configuration.minimumHolderBindingIterations = 1000
        let readerKey = stores.addPlatform("urn:hc:platform:checkpoint-1", kind: .checkpoint)
        let residentKey = stores.addPlatform("urn:hc:platform:app-1", kind: .resident)
        let ruleSet = try RuleSet.decode(try ReferenceRules.file())
        let (api, codeCache) = try await stores.queryAPI(
            configuration: configuration,
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            logger: logger
        )
        try await api.platforms.refresh()
        let positive = pseudonymizer.pseudonym(of: "PERSON-POSITIVE")
        let line =
            #"{"specversion":"1.0","id":"t1","source":"urn:hc:publisher:lab","type":"hc.test-result.v1","subject":"\#(positive)","time":"\#((Self.now - .seconds(86_400)).rfc3339Seconds)","data":{"test":"pcr","result":"positive","lab":"LAB-1"}}"#
        stores.record([try EventDecoder.decode(Array(line.utf8))], of: positive, recordedTime: Self.now)
        stores.addAnalyst("analyst-1", apiKeySHA256: AnalystAccess.hash(Self.analystKey))
        let router = QueryAPIApplication.router(api: api, now: { Self.now })
        try await Application(router: router, logger: logger).test(.router) { client in
            let fixture = Fixture(
                client: client,
                stores: stores,
                pseudonymizer: pseudonymizer,
                ruleSet: ruleSet,
                codeCache: codeCache,
                positive: positive,
                reader: [.authorization: "Bearer \(readerKey)"],
                resident: [.authorization: "Bearer \(residentKey)"]
            )
            try await body(fixture)
        }
    }

    static func json(_ response: TestResponse) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
    }

    /// The problem's code: its `type` is `urn:hc:problem:<code>`.
    static func problemCode(_ response: TestResponse) -> String? {
        (json(response)?["type"] as? String).map { String($0.dropFirst("urn:hc:problem:".count)) }
    }

    @Test("GET code: evaluated from the stored state now and at an earlier instant; bad input is 400")
    func code() async throws {
        try await withAPI { fixture in
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/code",
                method: .get,
                headers: fixture.reader
            ) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["status"] as? String == "red")
                #expect(Self.json(response)?["subject"] as? String == fixture.positive)
            }
            let before = (Self.now - .seconds(3 * 86_400)).rfc3339Seconds
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/code?at=\(before)",
                method: .get,
                headers: fixture.reader
            ) {
                #expect($0.status == .ok)
                #expect(Self.json($0)?["status"] as? String != "red", "before the test, the test cannot count")
            }
            try await fixture.client.execute(
                uri: "/v1/people/NOT-A-PSEUDONYM/code",
                method: .get,
                headers: fixture.reader
            ) {
                #expect($0.status == .badRequest)
                #expect(Self.problemCode($0) == "invalid-pseudonym")
            }
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/code?at=yesterday",
                method: .get,
                headers: fixture.reader
            ) {
                #expect($0.status == .badRequest)
                #expect(Self.problemCode($0) == "invalid-instant")
            }
        }
    }

    @Test("ruleSet= names the rule set that judges (hash or ID@VERSION) and the answer names it; unknown 404")
    func namedRuleSet() async throws {
        try await withAPI { fixture in
            // From ten days ago, a positive PCR is yellow: the API judges by it unless another is named.
            let reference = try Array(
                Data(
                    contentsOf: LocalInfrastructure.repositoryRoot
                        .appendingPathComponent("projections/rules/reference-v1.json")
                )
            )
            var milder = String(decoding: reference, as: UTF8.self)
            milder.replaceSubrange(milder.range(of: "\"colour\": \"red\"")!, with: "\"colour\": \"yellow\"")
            milder = milder.replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"2.0.0\"")
            fixture.stores.activate(Array(milder.utf8), effectiveFrom: Self.now - .seconds(10 * 86_400))
            let milderHash = try RuleSet.decode(Array(milder.utf8)).contentHash
            let code = "/v1/people/\(fixture.positive)/code"
            for (query, status, hash) in [
                ("", "yellow", milderHash),
                ("?ruleSet=\(fixture.ruleSet.contentHash)", "red", fixture.ruleSet.contentHash),
                ("?ruleSet=reference-v1@2.0.0", "yellow", milderHash),
                ("?ruleSet=reference-v1@1.0.0", "red", fixture.ruleSet.contentHash),
            ] {
                try await fixture.client.execute(uri: code + query, method: .get, headers: fixture.reader) {
                    #expect($0.status == .ok)
                    #expect(Self.json($0)?["status"] as? String == status, "\(query)")
                    #expect((Self.json($0)?["ruleSet"] as? [String: Any])?["hash"] as? String == hash, "\(query)")
                }
            }
            for (query, status, problem) in [
                ("?ruleSet=sha256:0123", HTTPResponse.Status.notFound, "unknown-rule-set"),
                ("?ruleSet=", .badRequest, "invalid-rule-set"),
                ("?ruleSet=" + String(repeating: "x", count: 201), .badRequest, "invalid-rule-set"),
            ] {
                try await fixture.client.execute(uri: code + query, method: .get, headers: fixture.reader) {
                    #expect($0.status == status)
                    #expect(Self.problemCode($0) == problem)
                }
            }
            let analyst: HTTPFields = [
                .authorization: "Bearer \(Self.analystKey)", HTTPField.Name("X-HC-Purpose")!: "case 9",
            ]
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/explain?ruleSet=\(fixture.ruleSet.contentHash)",
                method: .get,
                headers: analyst
            ) { response in
                let code = Self.json(response)?["code"] as? [String: Any]
                #expect(code?["status"] as? String == "red")
                #expect((code?["ruleSet"] as? [String: Any])?["hash"] as? String == fixture.ruleSet.contentHash)
            }
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/explain?ruleSet=nope@1",
                method: .get,
                headers: analyst
            ) {
                #expect($0.status == .notFound)
                #expect(Self.problemCode($0) == "unknown-rule-set")
            }
        }
    }

    @Test("GET code: a kept materialised code that is still valid is answered as stored")
    func materialisedCode() async throws {
        try await withAPI { fixture in
            let subject = fixture.pseudonymizer.pseudonym(of: "PERSON-MATERIALISED")
            let decision = CodeDecision(
                status: .yellow,
                validUntil: Self.now + .seconds(3600),
                reasons: [],
                ruleSetID: fixture.ruleSet.id,
                ruleSetVersion: fixture.ruleSet.version,
                ruleSetHash: fixture.ruleSet.contentHash
            )
            fixture.stores.store(MaterialisedCode(decision: decision, evaluatedAt: Self.now), of: subject)
            try await fixture.client.execute(uri: "/v1/people/\(subject)/code", method: .get, headers: fixture.reader) {
                response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["status"] as? String == "yellow")
            }
            // Kept in memory once changes are heard: the next read is answered without reading the code.
            fixture.codeCache.listening()
            for _ in 0..<2 {
                try await fixture.client.execute(
                    uri: "/v1/people/\(subject)/code",
                    method: .get,
                    headers: fixture.reader
                ) {
                    #expect($0.status == .ok)
                    #expect(Self.json($0)?["status"] as? String == "yellow")
                }
            }
            #expect(fixture.codeCache.statistics.hits == 1)
            // Every read is audited first: one that cannot be recorded is not served, kept or not.
            fixture.stores.fail(with: RedactedError("postgres server: sqlstate 57P01"))
            try await fixture.client.execute(uri: "/v1/people/\(subject)/code", method: .get, headers: fixture.reader) {
                response in
                #expect(response.status == .serviceUnavailable)
            }
            #expect(fixture.codeCache.statistics.hits == 1)
            #expect(fixture.stores.audit.count == 3, "the refused read is not in the trail")
        }
    }

    @Test("a failing or slow database is 503 database-unavailable with Retry-After, never a 500")
    func databaseUnavailable() async throws {
        try await withAPI { fixture in
            fixture.stores.fail(with: RedactedError("postgres server: sqlstate 57P01"))
            for uri in [
                "/v1/people/\(fixture.positive)/code", "/v1/people/\(fixture.positive)/code?at=2020-04-01T00:00:00Z",
            ] {
                try await fixture.client.execute(uri: uri, method: .get, headers: fixture.reader) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(Self.problemCode(response) == "database-unavailable")
                    #expect(response.headers[.retryAfter] == "1")
                }
            }
            fixture.stores.fail(with: nil)
            fixture.stores.delay(by: .seconds(5))
            let started = ContinuousClock.now
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/code",
                method: .get,
                headers: fixture.reader
            ) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Self.problemCode(response) == "database-unavailable")
            }
            #expect(ContinuousClock.now - started < .seconds(3), "answered within the read timeout, not the delay")
        }
    }

    /// Looks `identifier` up as the residents' platform; the answer's status and JSON.
    static func lookup(_ identifier: String, _ fixture: Fixture) async throws -> (HTTPResponse.Status, [String: Any]?) {
        try await fixture.client.execute(
            uri: "/v1/code-lookups",
            method: .post,
            headers: fixture.resident,
            body: ByteBuffer(string: #"{"subject":"\#(identifier)"}"#)
        ) { ($0.status, Self.json($0)) }
    }

    /// Verifies `token` with `holder` (none: the field is left out); the answer's JSON.
    static func verify(_ token: String, holder: String?, _ fixture: Fixture) async throws -> [String: Any]? {
        let body = holder.map { #"{"token":"\#(token)","holder":"\#($0)"}"# } ?? #"{"token":"\#(token)"}"#
        return try await fixture.client.execute(
            uri: "/v1/code-verifications",
            method: .post,
            body: ByteBuffer(string: body)
        ) {
            #expect($0.status == .ok)
            return Self.json($0)
        }
    }

    @Test("POST code-lookups: a residents' platform gets the code and a signed code bound to the holder; refusals")
    func lookupsAndVerifications() async throws {
        try await withAPI { fixture in
            let (status, json) = try await Self.lookup("PERSON-POSITIVE", fixture)
            #expect(status == .ok)
            #expect((json?["code"] as? [String: Any])?["subject"] as? String == fixture.positive)
            #expect((json?["code"] as? [String: Any])?["status"] as? String == "red")
            let signed = try #require((json?["signedCode"] as? [String: Any])?["token"] as? String)
            #expect(!signed.contains(fixture.positive) && !signed.contains("PERSON-POSITIVE"))

            let right = try await Self.verify(signed, holder: "PERSON-POSITIVE", fixture)
            #expect(right?["valid"] as? Bool == true)
            #expect(right?["status"] as? String == "red")
            #expect(right?["holderChecked"] as? Bool == true)
            #expect(right?["subject"] == nil, "no pseudonym in the answer")
            let wrong = try await Self.verify(signed, holder: "PERSON-OTHER", fixture)
            #expect(wrong?["valid"] as? Bool == false)
            #expect(wrong?["reason"] as? String == "wrong-holder")
            let unnamed = try await Self.verify(signed, holder: nil, fixture)
            #expect(unnamed?["reason"] as? String == "holder-required", "a copied token alone does not pass")
            #expect(try await Self.verify("not.a.token", holder: "X", fixture)?["reason"] as? String == "malformed")

            let refusals: [(String, String, HTTPResponse.Status, String)] = [
                ("/v1/code-lookups", #"{"subject":""}"#, .badRequest, "invalid-lookup"),
                ("/v1/code-lookups", "not json", .badRequest, "invalid-lookup"),
                ("/v1/code-lookups", String(repeating: "x", count: 2048), .contentTooLarge, "body-too-large"),
                ("/v1/code-verifications", #"{"tok":1}"#, .badRequest, "invalid-verification"),
                ("/v1/code-verifications", #"{"token":"a","holder":""}"#, .badRequest, "invalid-verification"),
                ("/v1/code-verifications", String(repeating: "x", count: 9000), .contentTooLarge, "body-too-large"),
            ]
            for (uri, body, status, code) in refusals {
                try await fixture.client.execute(
                    uri: uri,
                    method: .post,
                    headers: fixture.resident,
                    body: ByteBuffer(string: body)
                ) {
                    #expect($0.status == status, "\(uri) \(body.prefix(20))")
                    #expect(Self.problemCode($0) == code)
                }
            }
        }
    }

    @Test("verification without a holder is allowed only when configured, and says the holder was not checked")
    func verificationWithoutHolder() async throws {
        var optional = QueryAPIConfiguration()
        optional.verificationRequiresHolder = false
        try await withAPI(optional) { fixture in
            let (_, json) = try await Self.lookup("PERSON-POSITIVE", fixture)
            let signed = try #require((json?["signedCode"] as? [String: Any])?["token"] as? String)
            let answer = try await Self.verify(signed, holder: nil, fixture)
            #expect(answer?["valid"] as? Bool == true)
            #expect(answer?["holderChecked"] as? Bool == false)
        }
    }

    @Test("the residents' channel and code reads need the right platform: 401 without, 403 for the wrong kind")
    func platformCredentials() async throws {
        try await withAPI { fixture in
            let lookup = ByteBuffer(string: #"{"subject":"PERSON-POSITIVE"}"#)
            let code = "/v1/people/\(fixture.positive)/code"
            let cases: [(String, HTTPRequest.Method, HTTPFields, HTTPResponse.Status, String)] = [
                ("/v1/code-lookups", .post, [:], .unauthorized, "missing-credentials"),
                (
                    "/v1/code-lookups", .post, [.authorization: "Bearer hcpl_unknown"], .unauthorized,
                    "invalid-credentials"
                ),
                (
                    "/v1/code-lookups", .post, [.authorization: "Bearer \(Self.analystKey)"], .unauthorized,
                    "invalid-credentials"
                ),
                ("/v1/code-lookups", .post, fixture.reader, .forbidden, "forbidden-platform"),
                (code, .get, [:], .unauthorized, "missing-credentials"),
                (code, .get, [.authorization: "Bearer hcpl_unknown"], .unauthorized, "invalid-credentials"),
                (code, .get, fixture.resident, .forbidden, "forbidden-platform"),
            ]
            for (uri, method, headers, status, problem) in cases {
                try await fixture.client.execute(uri: uri, method: method, headers: headers, body: lookup) {
                    #expect($0.status == status, "\(method) \(uri)")
                    #expect(Self.problemCode($0) == problem, "\(method) \(uri)")
                    if status == .unauthorized { #expect($0.headers[.wwwAuthenticate] != nil) }
                }
            }
            #expect(fixture.stores.audit.isEmpty, "a refused read is not audited")
            // A checkpoint's read and an analyst's read of the code are both audited, with who read.
            try await fixture.client.execute(uri: code, method: .get, headers: fixture.reader) {
                #expect($0.status == .ok)
            }
            let analyst: HTTPFields = [.authorization: "Bearer \(Self.analystKey)", Self.purpose: "case 9"]
            try await fixture.client.execute(uri: code, method: .get, headers: analyst) { #expect($0.status == .ok) }
            #expect(
                fixture.stores.audit == [
                    .init(
                        analyst: nil,
                        platform: "urn:hc:platform:checkpoint-1",
                        purpose: "checkpoint",
                        subject: fixture.positive,
                        endpoint: "code"
                    ),
                    .init(
                        analyst: "analyst-1",
                        platform: nil,
                        purpose: "case 9",
                        subject: fixture.positive,
                        endpoint: "code"
                    ),
                ]
            )
            // A checkpoint platform cannot explain or export.
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/explain",
                method: .get,
                headers: fixture.reader
            ) {
                #expect($0.status == .unauthorized)
            }
        }
    }

    @Test("an unknown person gets no code (404 unknown-person) unless unknown people are configured green")
    func unknownPeople() async throws {
        try await withAPI { fixture in
            let (status, json) = try await Self.lookup("NOBODY-AT-ALL", fixture)
            #expect(status == .notFound)
            #expect((json?["type"] as? String) == "urn:hc:problem:unknown-person")
            #expect(json?["signedCode"] == nil)
            let nobody = fixture.pseudonymizer.pseudonym(of: "NOBODY-AT-ALL")
            try await fixture.client.execute(uri: "/v1/people/\(nobody)/code", method: .get, headers: fixture.reader) {
                #expect($0.status == .notFound)
                #expect(Self.problemCode($0) == "unknown-person")
            }
        }
        var green = QueryAPIConfiguration()
        green.unknownPeople = .green
        try await withAPI(green) { fixture in
            let (status, json) = try await Self.lookup("NOBODY-AT-ALL", fixture)
            #expect(status == .ok)
            #expect((json?["code"] as? [String: Any])?["status"] as? String == "green")
        }
    }

    @Test("rate limits: per platform and per person, 429 with Retry-After; other people and platforms go on")
    func rateLimits() async throws {
        var limited = QueryAPIConfiguration()
        limited.platformRateLimit = RequestRateLimit(requestsPerSecond: 0.01, burst: 3)
        limited.personRateLimit = RequestRateLimit(requestsPerSecond: 0.01, burst: 2)
        try await withAPI(limited) { fixture in
            // Per person: two reads of the positive person, then 429; another person is still answered.
            let code = "/v1/people/\(fixture.positive)/code"
            for expected in [HTTPResponse.Status.ok, .ok, .tooManyRequests] {
                try await fixture.client.execute(uri: code, method: .get, headers: fixture.reader) {
                    #expect($0.status == expected)
                    if expected == .tooManyRequests {
                        #expect(Self.problemCode($0) == "rate-limited")
                        #expect($0.headers[.retryAfter].flatMap(Int.init).map { $0 >= 1 } == true)
                    }
                }
            }
            // Per platform: the residents' app has 3 requests; the third person's lookup is its last.
            for (index, expected) in [HTTPResponse.Status.notFound, .notFound, .notFound, .tooManyRequests].enumerated()
            {
                let (status, _) = try await Self.lookup("SOMEONE-\(index)", fixture)
                #expect(status == expected, "lookup \(index)")
            }
        }
    }
    @Test("JWKS, OpenAPI, health and metrics are public")
    func publicDocuments() async throws {
        try await withAPI { fixture in
            try await fixture.client.execute(uri: "/.well-known/jwks.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/jwk-set+json")
                #expect((Self.json(response)?["keys"] as? [Any])?.count == 1)
            }
            try await fixture.client.execute(uri: "/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == QueryAPIOpenAPI.document)
            }
            try await fixture.client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test("explain and export: an analyst key and a purpose are required, and every served read is audited")
    func analystReads() async throws {
        try await withAPI { fixture in
            let purpose = HTTPField.Name("X-HC-Purpose")!
            for endpoint in ["explain", "export"] {
                let uri = "/v1/people/\(fixture.positive)/\(endpoint)"
                try await fixture.client.execute(uri: uri, method: .get) {
                    #expect($0.status == .unauthorized)
                    #expect(Self.problemCode($0) == "missing-credentials")
                    #expect($0.headers[.wwwAuthenticate] != nil)
                }
                try await fixture.client.execute(
                    uri: uri,
                    method: .get,
                    headers: [.authorization: "Bearer hcak_wrong", purpose: "review"]
                ) {
                    #expect($0.status == .unauthorized)
                    #expect(Self.problemCode($0) == "invalid-credentials")
                }
                try await fixture.client.execute(
                    uri: uri,
                    method: .get,
                    headers: [.authorization: "Bearer \(Self.analystKey)"]
                ) {
                    #expect($0.status == .forbidden)
                    #expect(Self.problemCode($0) == "missing-purpose")
                }
                try await fixture.client.execute(
                    uri: "/v1/people/NOT-A-PSEUDONYM/\(endpoint)",
                    method: .get,
                    headers: [.authorization: "Bearer \(Self.analystKey)", purpose: "review"]
                ) {
                    #expect($0.status == .badRequest)
                    #expect(Self.problemCode($0) == "invalid-pseudonym")
                }
            }
            #expect(fixture.stores.audit.isEmpty, "a refused read is not audited")
            let headers: HTTPFields = [.authorization: "Bearer \(Self.analystKey)", purpose: "case 17 review"]
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/explain",
                method: .get,
                headers: headers
            ) { response in
                #expect(response.status == .ok)
                #expect((Self.json(response)?["code"] as? [String: Any])?["status"] as? String == "red")
            }
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/export",
                method: .get,
                headers: headers
            ) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["subject"] as? String == fixture.positive)
                #expect(((Self.json(response)?["tables"] as? [String: Any])?["event_archive"] as? [Any])?.count == 1)
            }
            #expect(
                fixture.stores.audit.map(\.endpoint) == ["explain", "export"]
                    && fixture.stores.audit.allSatisfy {
                        $0.analyst == "analyst-1" && $0.purpose == "case 17 review" && $0.subject == fixture.positive
                    }
            )
            fixture.stores.fail(with: RedactedError("postgres server: sqlstate 57P01"))
            try await fixture.client.execute(
                uri: "/v1/people/\(fixture.positive)/explain",
                method: .get,
                headers: headers
            ) { response in
                #expect(response.status == .serviceUnavailable, "a read that cannot be audited is not served")
            }
        }
    }

    @Test(
        "explain pages: earlier pages continue the timeline and the start of rules that still fire; bad paging is 400"
    )
    func explanationPages() async throws {
        try await withAPI { fixture in
            // A positive PCR 30 days ago (red ever since), then a journey a day.
            let subject = fixture.pseudonymizer.pseudonym(of: "PERSON-LONG")
            var lines = [
                #"{"specversion":"1.0","id":"pcr","source":"urn:hc:publisher:lab","type":"hc.test-result.v1","subject":"\#(subject)","time":"\#((Self.now - .seconds(30 * 86_400)).rfc3339Seconds)","data":{"test":"pcr","result":"positive","lab":"LAB-1"}}"#
            ]
            for day in 1...29 {
                let time = Self.now - .seconds(Int64(30 - day) * 86_400)
                lines.append(
                    #"{"specversion":"1.0","id":"trip-\#(day)","source":"urn:hc:publisher:rail","type":"hc.travel.v1","subject":"\#(subject)","time":"\#(time.rfc3339Seconds)","data":{"mode":"train","from":"110101","to":"310104","arrivedAt":"\#((time + .seconds(3600)).rfc3339Seconds)"}}"#
                )
            }
            fixture.stores.record(
                try lines.map { try EventDecoder.decode(Array($0.utf8)) },
                of: subject,
                recordedTime: Self.now - .seconds(60)
            )
            let headers: HTTPFields = [.authorization: "Bearer \(Self.analystKey)", Self.purpose: "case 18 review"]
            func explain(_ query: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                try await fixture.client.execute(
                    uri: "/v1/people/\(subject)/explain\(query)",
                    method: .get,
                    headers: headers
                ) { ($0.status, Self.json($0) ?? [:]) }
            }
            func ids(_ answer: [String: Any]) -> [String] {
                (answer["timeline"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            }
            func rule(_ answer: [String: Any]) -> [String: Any] {
                (answer["firingRules"] as? [[String: Any]] ?? []).first { $0["rule"] as? String == "positive-pcr" }
                    ?? [:]
            }
            // The whole history fits the default page: answered as before pagination.
            let (status, whole) = try await explain("")
            #expect(status == .ok)
            #expect(ids(whole).count == 30 && whole["earlierPage"] == nil)
            #expect(rule(whole)["since"] as? String == (Self.now - .seconds(30 * 86_400)).rfc3339Seconds)
            #expect(rule(whole)["firesEarlier"] == nil)

            // Pages of 7, followed back to the first event.
            var (pageStatus, page) = try await explain("?limit=7")
            #expect(pageStatus == .ok)
            #expect(ids(page) == Array(ids(whole).suffix(7)))
            #expect(rule(page)["firesEarlier"] as? Bool == true)
            #expect(rule(page)["since"] as? String == (page["timeline"] as? [[String: Any]])?.first?["time"] as? String)
            var pages = [ids(page)]
            while let token = page["earlierPage"] as? String {
                (pageStatus, page) = try await explain("?limit=7&page=\(token)")
                #expect(pageStatus == .ok)
                pages.append(ids(page))
                #expect(pages.count <= 5)
            }
            #expect(pages.count == 5)
            #expect(Array(pages.reversed().joined()) == ids(whole), "the pages together are the whole timeline, once")
            // The earliest page finds when the rule started, as the whole history does.
            #expect(rule(page)["since"] as? String == rule(whole)["since"] as? String)
            #expect(rule(page)["firesEarlier"] == nil)

            for query in [
                "?limit=0", "?limit=1001", "?limit=ten", "?page=not-a-token",
                "?page=" + String(repeating: "A", count: 5000),
            ] {
                let (refused, problem) = try await explain(query)
                #expect(refused == .badRequest, "\(query)")
                #expect(problem["type"] as? String == "urn:hc:problem:invalid-page", "\(query)")
            }
        }
    }
}
