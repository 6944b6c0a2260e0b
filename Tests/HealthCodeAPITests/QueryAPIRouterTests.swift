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

    struct Fixture {
        let client: any TestClientProtocol
        let stores: InMemoryQueryStores
        let pseudonymizer: Pseudonymizer
        let ruleSet: RuleSet
        let codeCache: CodeCache
        /// A person with a positive PCR taken a day before ``QueryAPIRouterTests/now``.
        let positive: String
    }

    /// Runs `body` against a query API on fresh in-memory stores, with a 300 ms read timeout.
    func withAPI(_ body: @Sendable (Fixture) async throws -> Void) async throws {
        var logger = Logger(label: "api-router-tests")
        logger.logLevel = .error
        let stores = InMemoryQueryStores()
        let pseudonymizer = try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey())
        let keys = FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("hc_router_keys"))
        defer { try? FileManager.default.removeItem(at: keys) }
        var configuration = QueryAPIConfiguration()
        configuration.signingKeysDirectory = keys.path
        configuration.readTimeout = .milliseconds(300)
        let ruleSet = try RuleSet.decode(
            Array(
                Data(
                    contentsOf: LocalInfrastructure.repositoryRoot
                        .appendingPathComponent("projections/rules/reference-v1.json")
                )
            )
        )
        let (api, codeCache) = try await QueryAPIServer.assemble(
            configuration: configuration,
            stores: QueryAPIStores(
                codes: stores,
                states: stores,
                records: stores,
                analysts: stores,
                areaEvents: stores
            ),
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            createSigningKey: true,
            logger: logger
        )
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
                positive: positive
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
            try await fixture.client.execute(uri: "/v1/people/\(fixture.positive)/code", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["status"] as? String == "red")
                #expect(Self.json(response)?["subject"] as? String == fixture.positive)
            }
            let before = (Self.now - .seconds(3 * 86_400)).rfc3339Seconds
            try await fixture.client.execute(uri: "/v1/people/\(fixture.positive)/code?at=\(before)", method: .get) {
                #expect($0.status == .ok)
                #expect(Self.json($0)?["status"] as? String != "red", "before the test, the test cannot count")
            }
            try await fixture.client.execute(uri: "/v1/people/NOT-A-PSEUDONYM/code", method: .get) {
                #expect($0.status == .badRequest)
                #expect(Self.problemCode($0) == "invalid-pseudonym")
            }
            try await fixture.client.execute(uri: "/v1/people/\(fixture.positive)/code?at=yesterday", method: .get) {
                #expect($0.status == .badRequest)
                #expect(Self.problemCode($0) == "invalid-instant")
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
            try await fixture.client.execute(uri: "/v1/people/\(subject)/code", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["status"] as? String == "yellow")
            }
            // Kept in memory once changes are heard: answered without the store, even while it fails.
            fixture.codeCache.listening()
            try await fixture.client.execute(uri: "/v1/people/\(subject)/code", method: .get) {
                #expect($0.status == .ok)
            }
            fixture.stores.fail(with: RedactedError("postgres server: sqlstate 57P01"))
            try await fixture.client.execute(uri: "/v1/people/\(subject)/code", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["status"] as? String == "yellow")
            }
            #expect(fixture.codeCache.statistics.hits == 1)
            try await fixture.client.execute(uri: "/v1/people/\(fixture.positive)/code", method: .get) { response in
                #expect(response.status == .serviceUnavailable, "what is not kept needs the store")
            }
        }
    }

    @Test("a failing or slow database is 503 database-unavailable with Retry-After, never a 500")
    func databaseUnavailable() async throws {
        try await withAPI { fixture in
            fixture.stores.fail(with: RedactedError("postgres server: sqlstate 57P01"))
            for uri in [
                "/v1/people/\(fixture.positive)/code", "/v1/people/\(fixture.positive)/code?at=2020-04-01T00:00:00Z",
            ] {
                try await fixture.client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(Self.problemCode(response) == "database-unavailable")
                    #expect(response.headers[.retryAfter] == "1")
                }
            }
            fixture.stores.fail(with: nil)
            fixture.stores.delay(by: .seconds(5))
            let started = ContinuousClock.now
            try await fixture.client.execute(uri: "/v1/people/\(fixture.positive)/code", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Self.problemCode(response) == "database-unavailable")
            }
            #expect(ContinuousClock.now - started < .seconds(3), "answered within the read timeout, not the delay")
        }
    }

    @Test("POST code-lookups: hashes the identifier, answers the code and a signed code that verifies; refusals")
    func lookupsAndVerifications() async throws {
        try await withAPI { fixture in
            let token = try await fixture.client.execute(
                uri: "/v1/code-lookups",
                method: .post,
                body: ByteBuffer(string: #"{"subject":"PERSON-POSITIVE"}"#)
            ) { response -> String? in
                #expect(response.status == .ok)
                let json = Self.json(response)
                #expect((json?["code"] as? [String: Any])?["subject"] as? String == fixture.positive)
                #expect((json?["code"] as? [String: Any])?["status"] as? String == "red")
                return (json?["signedCode"] as? [String: Any])?["token"] as? String
            }
            let signed = try #require(token)
            try await fixture.client.execute(
                uri: "/v1/code-verifications",
                method: .post,
                body: ByteBuffer(string: #"{"token":"\#(signed)"}"#)
            ) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["valid"] as? Bool == true)
                #expect(Self.json(response)?["status"] as? String == "red")
            }
            try await fixture.client.execute(
                uri: "/v1/code-verifications",
                method: .post,
                body: ByteBuffer(string: #"{"token":"not.a.token"}"#)
            ) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)?["valid"] as? Bool == false)
            }
            let refusals: [(String, String, HTTPResponse.Status, String)] = [
                ("/v1/code-lookups", #"{"subject":""}"#, .badRequest, "invalid-lookup"),
                ("/v1/code-lookups", "not json", .badRequest, "invalid-lookup"),
                ("/v1/code-lookups", String(repeating: "x", count: 2048), .contentTooLarge, "body-too-large"),
                ("/v1/code-verifications", #"{"tok":1}"#, .badRequest, "invalid-verification"),
                ("/v1/code-verifications", String(repeating: "x", count: 9000), .contentTooLarge, "body-too-large"),
            ]
            for (uri, body, status, code) in refusals {
                try await fixture.client.execute(uri: uri, method: .post, body: ByteBuffer(string: body)) {
                    #expect($0.status == status, "\(uri) \(body.prefix(20))")
                    #expect(Self.problemCode($0) == code)
                }
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
}
