import Foundation
import HTTPTypes
import HealthCodeAPI
import HealthCodeConsole
import HealthCodeCore
import HealthCodeTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing

/// The console's pages, sessions, audit and refusals, in process through Hummingbird's test client, on the
/// query API's in-memory stores (``InMemoryQueryStores``) and in-memory operations: no PostgreSQL.
@Suite struct ConsoleRouterTests {
    static let start = Instant(microsecondsSinceEpoch: Instant.now().microsecondsSinceEpoch / 1_000_000 * 1_000_000)
    static let analystKey = "hcak_" + String(repeating: "cd", count: 32)
    static let approverKey = "hcak_" + String(repeating: "ef", count: 32)

    struct Fixture {
        let client: any TestClientProtocol
        let stores: InMemoryQueryStores
        let operations: InMemoryConsoleOperations
        /// A person with a positive PCR a day ago and a declaration its publisher retracted.
        let positive: String
        let clock: TestClock

        /// Signs in with `key` for `purpose`; the session cookie and the form token of the next page.
        func signIn(
            _ key: String = ConsoleRouterTests.analystKey,
            purpose: String = "complaint 2020-0415"
        )
            async throws -> String
        {
            let response = try await client.execute(
                uri: "/console/sign-in",
                method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "key=\(key)&purpose=\(purpose.replacingOccurrences(of: " ", with: "+"))&next=")
            )
            #expect(response.status == .seeOther)
            let cookie = try #require(response.headers[.setCookie])
            let token = try #require(cookie.split(separator: ";").first?.split(separator: "=").last)
            return "hc_console=\(token)"
        }

        func get(_ uri: String, cookie: String?) async throws -> TestResponse {
            var headers: HTTPFields = [:]
            if let cookie { headers[.cookie] = cookie }
            return try await client.execute(uri: uri, method: .get, headers: headers)
        }

        func post(_ uri: String, cookie: String?, form: String) async throws -> TestResponse {
            var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            if let cookie { headers[.cookie] = cookie }
            return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: form))
        }
    }

    func withConsole(
        _ configuration: ConsoleConfiguration = ConsoleConfiguration(),
        _ body: @Sendable (Fixture) async throws -> Void
    ) async throws {
        var logger = Logger(label: "console-router-tests")
        logger.logLevel = .error
        let stores = InMemoryQueryStores()
        let operations = InMemoryConsoleOperations()
        let pseudonymizer = try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey())
        let keys = FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("hc_console_keys"))
        defer { try? FileManager.default.removeItem(at: keys) }
        var apiConfiguration = QueryAPIConfiguration()
        apiConfiguration.signingKeysDirectory = keys.path
        apiConfiguration.readTimeout = .milliseconds(300)
        let ruleSet = try RuleSet.decode(try ReferenceRules.file())
        let (api, _) = try await stores.queryAPI(
            configuration: apiConfiguration,
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            logger: logger
        )
        let positive = pseudonymizer.pseudonym(of: "PERSON-POSITIVE")
        let day = Self.start - .seconds(86_400)
        let lines = [
            #"{"specversion":"1.0","id":"t1","source":"urn:hc:publisher:lab","type":"hc.test-result.v1","subject":"\#(positive)","time":"\#(day.rfc3339Seconds)","data":{"test":"pcr","result":"positive","lab":"LAB-1"}}"#,
            #"{"specversion":"1.0","id":"d<1>","source":"urn:hc:publisher:residents","type":"hc.declaration.v1","subject":"\#(positive)","time":"\#((day - .seconds(3600)).rfc3339Seconds)","data":{"symptoms":["cough"]}}"#,
            #"{"specversion":"1.0","id":"r1","source":"urn:hc:publisher:residents","type":"hc.retraction.v1","subject":"\#(positive)","time":"\#((day - .seconds(1800)).rfc3339Seconds)","data":{"retracts":"d<1>","reason":"wrong person"}}"#,
        ]
        stores.record(
            try lines.map { try EventDecoder.decode(Array($0.utf8)) },
            of: positive,
            recordedTime: Self.start - .seconds(60)
        )
        stores.addAnalyst("analyst-1", apiKeySHA256: AnalystAccess.hash(Self.analystKey))
        stores.addAnalyst("approver-1", apiKeySHA256: AnalystAccess.hash(Self.approverKey))
        operations.allowApprovals(by: "approver-1")
        let clock = TestClock(Self.start)
        let console = Console(
            api: api,
            operations: operations,
            configuration: configuration,
            now: { clock.now },
            logger: logger
        )
        let router = QueryAPIApplication.router(
            api: api,
            now: { clock.now },
            additionalRoutes: { _, router in console.addRoutes(to: router) }
        )
        try await Application(router: router, logger: logger).test(.router) { client in
            try await body(
                Fixture(client: client, stores: stores, operations: operations, positive: positive, clock: clock)
            )
        }
    }

    static func body(_ response: TestResponse) -> String { String(buffer: response.body) }

    static func formToken(_ page: String) throws -> String {
        let marker = "name=\"formToken\" value=\""
        let start = try #require(page.range(of: marker)).upperBound
        return String(page[start...].prefix(64))
    }

    @Test("pages need a session: the sign-in page, and back to the page asked for after signing in")
    func signInRequired() async throws {
        try await withConsole { fixture in
            let response = try await fixture.get("/console/dashboard", cookie: nil)
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/console/sign-in?next=/console/dashboard")
            let form = try await fixture.get("/console/sign-in?next=/console/dashboard", cookie: nil)
            #expect(form.status == .ok)
            #expect(Self.body(form).contains("name=\"next\" value=\"/console/dashboard\""))
            // Another site or a scheme is never a place to return to.
            for next in ["https://evil.example/", "//evil.example/console/", "/console/../x\\y"] {
                let page = try await fixture.get("/console/sign-in?next=\(next)", cookie: nil)
                #expect(!Self.body(page).contains("evil"))
            }
            let signIn = try await fixture.post(
                "/console/sign-in",
                cookie: nil,
                form: "key=\(Self.analystKey)&purpose=case+17&next=%2Fconsole%2Fproposals"
            )
            #expect(signIn.status == .seeOther)
            #expect(signIn.headers[.location] == "/console/proposals")
            let cookie = try #require(signIn.headers[.setCookie])
            #expect(cookie.hasPrefix("hc_console="))
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
                #expect(cookie.contains(attribute), "\(attribute) in \(cookie)")
            }
            #expect(!cookie.contains(Self.analystKey), "the key never goes back to the browser")
            #expect(!(signIn.headers[.location] ?? "").contains("hcak_"))
        }
    }

    @Test("a wrong key or no purpose is refused with a page saying which; the key is never echoed")
    func signInRefused() async throws {
        try await withConsole { fixture in
            let wrong = try await fixture.post(
                "/console/sign-in",
                cookie: nil,
                form: "key=hcak_\(String(repeating: "00", count: 32))&purpose=case"
            )
            #expect(wrong.status == .unauthorized)
            #expect(Self.body(wrong).contains("unknown or revoked"))
            #expect(!Self.body(wrong).contains("hcak_00"))
            #expect(wrong.headers[.setCookie] == nil)
            let purposeless = try await fixture.post("/console/sign-in", cookie: nil, form: "key=\(Self.analystKey)")
            #expect(purposeless.status == .unauthorized)
            #expect(Self.body(purposeless).contains("Declare the purpose"))
            let garbled = try await fixture.post("/console/sign-in", cookie: nil, form: "key=%zz")
            #expect(garbled.status == .badRequest)
            fixture.stores.fail(with: TestFailure("database down"))
            let down = try await fixture.post(
                "/console/sign-in",
                cookie: nil,
                form: "key=\(Self.analystKey)&purpose=case"
            )
            #expect(down.status == .serviceUnavailable, "a sign-in that cannot be checked says so")
            #expect(down.headers[.setCookie] == nil)
            fixture.stores.fail(with: nil)
            let huge = try await fixture.post(
                "/console/sign-in",
                cookie: nil,
                form: "key=" + String(repeating: "a", count: 10_000)
            )
            #expect(huge.status == .contentTooLarge)
        }
    }

    @Test("every page carries the security headers: no script, nothing from elsewhere, never framed or cached")
    func securityHeaders() async throws {
        try await withConsole { fixture in
            let cookie = try await fixture.signIn()
            for uri in ["/console/sign-in", "/console/dashboard", "/console/people", "/console/proposals"] {
                let response = try await fixture.get(uri, cookie: uri == "/console/sign-in" ? nil : cookie)
                #expect(response.status == .ok, "\(uri)")
                let policy = response.headers[.contentSecurityPolicy] ?? ""
                #expect(policy.contains("default-src 'none'"), "\(uri)")
                #expect(policy.contains("frame-ancestors 'none'"))
                #expect(!policy.contains("script-src"), "no script is allowed at all")
                #expect(response.headers[.cacheControl] == "no-store")
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                let page = Self.body(response)
                #expect(!page.contains("<script"), "\(uri)")
                #expect(!page.contains("http://") && !page.contains("https://"), "nothing from elsewhere: \(uri)")
                #expect(page.contains("lang=\"en\""))
            }
            let style = try await fixture.get("/console/assets/console.css", cookie: nil)
            #expect(style.status == .ok)
            #expect(style.headers[.contentType] == "text/css; charset=utf-8")
        }
    }

    @Test("a person's page: the code, firing rule and timeline; the read is audited before anything is shown")
    func personExplanation() async throws {
        try await withConsole { fixture in
            let cookie = try await fixture.signIn()
            let at = Self.start.rfc3339Seconds.replacingOccurrences(of: "Z", with: "")
            let response = try await fixture.get(
                "/console/people?subject=\(fixture.positive)&at=\(at)&knownAt=",
                cookie: cookie
            )
            #expect(response.status == .ok)
            let page = Self.body(response)
            #expect(page.contains("<span class=\"status c-red\">red</span>"), "the status, as a word")
            #expect(page.contains("pcr-positive") || page.contains("positive"), "the rule that fired")
            #expect(page.contains("test-result"))
            #expect(page.contains("<del>d&lt;1&gt;</del>"), "the retracted event, struck through and escaped")
            #expect(!page.contains("d<1>"), "nothing from an event becomes markup")
            #expect(page.contains("<svg class=\"chart timeline\""))
            #expect(page.contains("class=\"band c-red\""), "the status band")
            #expect(page.contains("reference-v1@"), "the rule set in force")
            #expect(page.contains("/console/people/evidence?subject=\(fixture.positive)"))
            let audit = fixture.stores.audit
            #expect(audit.count == 1)
            #expect(audit.first?.subject == fixture.positive)
            #expect(audit.first?.purpose == "complaint 2020-0415")
            #expect(audit.first?.endpoint == "explain")

            // The evidence bundle: audited, downloaded as a file.
            let evidence = try await fixture.get(
                "/console/people/evidence?subject=\(fixture.positive)&at=\(Self.start.rfc3339Seconds)",
                cookie: cookie
            )
            #expect(evidence.status == .ok)
            #expect(evidence.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"evidence-") == true)
            #expect(fixture.operations.evidenceSubjects == [fixture.positive])
            #expect(fixture.stores.audit.last?.endpoint == "evidence")
        }
    }

    @Test("a read that cannot be audited is not served; bad input gets a page naming what is wrong")
    func personRefusals() async throws {
        try await withConsole { fixture in
            let cookie = try await fixture.signIn()
            let invalid = try await fixture.get("/console/people?subject=XYZ", cookie: cookie)
            #expect(invalid.status == .badRequest)
            #expect(Self.body(invalid).contains("32 lowercase hexadecimal"))
            let instant = try await fixture.get(
                "/console/people?subject=\(fixture.positive)&at=yesterday",
                cookie: cookie
            )
            #expect(instant.status == .badRequest)
            #expect(Self.body(instant).contains("&quot;At&quot; must be a date and time"))
            let rules = try await fixture.get(
                "/console/people?subject=\(fixture.positive)&ruleSet=sha256:nothing",
                cookie: cookie
            )
            #expect(rules.status == .notFound)
            #expect(fixture.stores.audit.isEmpty)
            fixture.stores.fail(with: TestFailure("audit unavailable"))
            let unaudited = try await fixture.get("/console/people?subject=\(fixture.positive)", cookie: cookie)
            #expect(unaudited.status == .serviceUnavailable)
            #expect(!Self.body(unaudited).contains("test-result"))
        }
    }

    @Test("the dashboard: codes by colour and area, stale feeds highlighted, projectors, dead letters, held changes")
    func dashboard() async throws {
        try await withConsole { fixture in
            let now = Self.start
            fixture.operations.setDashboard(
                DashboardFacts(
                    codesByArea: [
                        CodeCensus(area: AreaCode("420106"), green: 10, yellow: 2, red: 7),
                        CodeCensus(area: nil, green: 5, yellow: 0, red: 1),
                    ],
                    codesOverTime: [
                        CodeCensusSample(at: now - .seconds(120), green: 14, yellow: 2, red: 6),
                        CodeCensusSample(at: now - .seconds(60), green: 15, yellow: 2, red: 8),
                    ],
                    codesByAreaEarlier: AreaCensusSample(
                        at: now - .seconds(3600),
                        areas: [CodeCensus(area: AreaCode("420106"), green: 12, yellow: 2, red: 4)]
                    ),
                    feeds: [
                        PublisherFeed(
                            publisher: "bureau-<b>",
                            lastEventAt: now - .seconds(180),
                            minutes: [IngestMinute(minute: now - .seconds(180), events: 40)]
                        ),
                        PublisherFeed(publisher: "transport", lastEventAt: now - .seconds(7200), minutes: []),
                    ],
                    projectors: [
                        ProjectorReport(
                            member: "host-1/healthcode-projector",
                            reportedAt: now - .seconds(5),
                            state: "progressing",
                            lag: 12,
                            secondsSinceLastCommit: 0.5,
                            assignedPartitions: 8,
                            healthy: true
                        )
                    ],
                    deadLetters: DeadLetterFacts(
                        waiting: 3,
                        latest: [
                            .init(
                                topic: "healthcode.events",
                                partition: 2,
                                offset: 99,
                                reason: "invalid-json",
                                parkedAt: now
                            )
                        ]
                    ),
                    heldOverrides: [HeldOverrideFacts(id: 4, office: "review-1", officer: "o-1", heldAt: now)]
                )
            )
            let cookie = try await fixture.signIn()
            let response = try await fixture.get("/console/dashboard", cookie: cookie)
            #expect(response.status == .ok)
            let page = Self.body(response)
            #expect(page.contains("<dd data-status=\"red\">8</dd>"))
            #expect(page.contains("<dd data-status=\"green\">15</dd>"))
            #expect(page.contains("<dd data-status=\"total\">25</dd>"))
            #expect(page.contains("<th scope=\"row\">420106</th>"))
            #expect(page.contains("<td>4 (+3)</td>"), "red an hour ago in the area, and the change since")
            #expect(page.contains("<td>0 (+1)</td>"), "an area with no sample then counts from none")
            #expect(page.contains("last event 3 min ago"))
            #expect(page.contains("bureau-&lt;b&gt;"))
            #expect(page.contains("<tr class=\"stale\"><th scope=\"row\">transport</th>"), "the stale feed, marked")
            #expect(page.contains("1 stale: no event for more than 15 minutes."))
            #expect(page.contains("host-1/healthcode-projector"))
            #expect(page.contains("3 waiting"))
            #expect(page.contains("invalid-json"))
            #expect(page.contains("1 review override waits"))
            #expect(page.contains("<polyline class=\"line c-red\""))
        }
    }

    @Test("a held change: impact by colour and area; approval only by who may, with the session's form token")
    func proposalDecision() async throws {
        try await withConsole { fixture in
            var report = ImpactReport()
            report.record("a" + String(repeating: "0", count: 31), area: AreaCode("420106"), from: .green, to: .red)
            report.record("b" + String(repeating: "0", count: 31), area: nil, from: .green, to: .green)
            fixture.operations.hold(
                Proposal(
                    id: 7,
                    kind: .ruleSet,
                    title: "reference-v1@1.1.0",
                    effectiveFrom: Self.start,
                    turningRed: 1,
                    threshold: 0,
                    impact: report,
                    requestedBy: "approver-1",
                    requestedAt: Self.start,
                    status: .held,
                    decidedBy: nil,
                    decidedAt: nil
                )
            )
            let analyst = try await fixture.signIn()
            let page = Self.body(try await fixture.get("/console/proposals/7", cookie: analyst))
            #expect(page.contains("420106"))
            #expect(page.contains("may not approve"))
            #expect(!page.contains("value=\"approve\""))
            let token = try Self.formToken(page)
            let refused = try await fixture.post(
                "/console/proposals/7/decision",
                cookie: analyst,
                form: "formToken=\(token)&decision=approve"
            )
            #expect(refused.status == .conflict)
            #expect(try await fixture.operations.proposal(7)?.status == .held)

            let approver = try await fixture.signIn(Self.approverKey, purpose: "approvals")
            let approverPage = Self.body(try await fixture.get("/console/proposals/7", cookie: approver))
            #expect(approverPage.contains("value=\"approve\""))
            let forged = try await fixture.post(
                "/console/proposals/7/decision",
                cookie: approver,
                form: "formToken=\(token)&decision=approve"
            )
            #expect(forged.status == .forbidden, "another session's form token")
            let ownToken = try Self.formToken(approverPage)
            let sameOperator = try await fixture.post(
                "/console/proposals/7/decision",
                cookie: approver,
                form: "formToken=\(ownToken)&decision=approve"
            )
            #expect(sameOperator.status == .conflict)
            #expect(Self.body(sameOperator).contains("another operator"))
            #expect(try await fixture.operations.proposal(7)?.status == .held)
        }
    }

    @Test("sign-out ends the session at once; an idle session ends by itself")
    func sessionsEnd() async throws {
        var configuration = ConsoleConfiguration()
        configuration.sessionIdleTimeout = .seconds(600)
        try await withConsole(configuration) { fixture in
            let cookie = try await fixture.signIn()
            let page = Self.body(try await fixture.get("/console/dashboard", cookie: cookie))
            let token = try Self.formToken(page)
            let wrong = try await fixture.post("/console/sign-out", cookie: cookie, form: "formToken=nope")
            #expect(wrong.status == .forbidden)
            let out = try await fixture.post("/console/sign-out", cookie: cookie, form: "formToken=\(token)")
            #expect(out.status == .seeOther)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await fixture.get("/console/dashboard", cookie: cookie).status == .seeOther)

            let idle = try await fixture.signIn()
            fixture.clock.advance(by: .seconds(599))
            #expect(try await fixture.get("/console/dashboard", cookie: idle).status == .ok)
            fixture.clock.advance(by: .seconds(601))
            #expect(try await fixture.get("/console/dashboard", cookie: idle).status == .seeOther)
        }
    }
}

/// A failure the in-memory stores throw.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The console's clock, moved by the test.
final class TestClock: Sendable {
    private let instant: Mutex<Instant>

    init(_ start: Instant) { instant = Mutex(start) }

    var now: Instant { instant.withLock { $0 } }

    func advance(by duration: Duration) { instant.withLock { $0 = $0 + duration } }
}
