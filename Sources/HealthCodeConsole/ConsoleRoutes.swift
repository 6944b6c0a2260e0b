import HTTPTypes
import HealthCodeAPI
import HealthCodeCore
import HealthCodeHTTP
import Hummingbird
import Logging
import Metrics
import NIOCore

/// The web console, served by the query API under `/console`: the person explanation, the impact of held
/// changes with their approval, and the operators' dashboard. Pages are HTML rendered on the server with SVG
/// charts; nothing is fetched from elsewhere and no script runs (the Content Security Policy says so). An
/// analyst signs in with an analyst key and a declared purpose; every read of a person is audited exactly as
/// through the API (`analyst_audit`, before anything is shown).
public struct Console: Sendable {
    let api: QueryAPI
    let operations: any ConsoleOperations
    let sessions: ConsoleSessions
    let configuration: ConsoleConfiguration
    let now: @Sendable () -> Instant
    let logger: Logger

    /// The session cookie (its path is `/console`).
    static let cookie = "hc_console"
    /// Largest form body (sign-in, decisions).
    static let maximumFormBytes = 4096
    /// Every page's security headers: no script, styles and images from the console itself only, forms post
    /// to it only, never framed, never cached (pages hold personal data), no referrer leaves.
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy:
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        .cacheControl: "no-store",
    ]
    static let signIns = ["accepted", "refused"].reduce(into: [String: Counter]()) {
        $0[$1] = Counter(label: "hc_console_sign_ins_total", dimensions: [("result", $1)])
    }

    /// - Parameters:
    ///   - api: the query API the console reads through (its explanations, analyst access and audit).
    ///   - operations: the dashboard's facts, held changes and evidence bundles.
    public init(
        api: QueryAPI,
        operations: any ConsoleOperations,
        configuration: ConsoleConfiguration,
        now: @escaping @Sendable () -> Instant = Instant.now,
        logger: Logger
    ) {
        self.api = api
        self.operations = operations
        self.sessions = ConsoleSessions(configuration: configuration)
        self.configuration = configuration
        self.now = now
        self.logger = logger
    }

    /// Adds the console's routes to `router`.
    public func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("console") { _, _ in Self.redirect("/console/dashboard") }
        router.get("console/assets/console.css") { _, _ in
            Self.asset(ConsoleStyle.stylesheet, type: "text/css; charset=utf-8", maxAge: 3600)
        }
        router.get("console/assets/icon.svg") { _, _ in
            Self.asset(ConsoleStyle.icon, type: "image/svg+xml", maxAge: 86_400)
        }
        router.get("console/sign-in") { request, _ in
            if session(of: request) != nil { return Self.redirect("/console/dashboard") }
            let next = request.uri.queryParameters["next"].map(String.init)
            return Self.page(Pages.signIn(problem: nil, next: Self.safeNext(next)))
        }
        router.post("console/sign-in") { request, _ in try await signIn(request) }
        router.post("console/sign-out") { request, _ in try await signOut(request) }
        router.get("console/dashboard") { request, _ in
            try await signedIn(request) { session in try await dashboard(session) }
        }
        router.get("console/people") { request, _ in
            try await signedIn(request) { session in try await person(request, session: session) }
        }
        router.get("console/people/evidence") { request, _ in
            try await signedIn(request) { session in try await evidence(request, session: session) }
        }
        router.get("console/proposals") { request, _ in
            try await signedIn(request) { session in
                try await databaseWork {
                    Self.page(Pages.proposals(try await operations.proposals(), session: session))
                }
            }
        }
        router.get("console/proposals/:id") { request, context in
            let id = context.parameters.get("id", as: Int64.self)
            return try await signedIn(request) { session in
                try await proposal(id, notice: request.uri.queryParameters["done"].map(String.init), session: session)
            }
        }
        router.post("console/proposals/:id/decision") { request, context in
            let id = context.parameters.get("id", as: Int64.self)
            return try await signedIn(request) { session in try await decide(id, request, session: session) }
        }
    }

    // MARK: Sessions

    func session(of request: Request) -> ConsoleSession? {
        guard let token = request.cookies[Self.cookie]?.value else { return nil }
        return sessions.session(token: token, now: now())
    }

    /// Runs `serve` for a signed-in analyst; sends anyone else to the sign-in page, and back here after.
    func signedIn(_ request: Request, _ serve: (ConsoleSession) async throws -> Response) async throws -> Response {
        guard let session = session(of: request) else {
            var target = request.uri.path
            if let query = request.uri.query, !query.isEmpty { target += "?" + query }
            let next = Self.safeNext(target).map { "?next=" + Self.percentEncoded($0) } ?? ""
            return Self.redirect("/console/sign-in" + next)
        }
        return try await serve(session)
    }

    func signIn(_ request: Request) async throws -> Response {
        let fields: [String: String]
        switch try await form(of: request) {
        case .failure(let refusal): return refusal.response
        case .success(let read): fields = read
        }
        let next = Self.safeNext(fields["next"])
        let key = fields["key"]?.trimmingCharacters(in: .whitespaces) ?? ""
        return try await databaseWork("console sign-in", reads: 1) {
            switch try await api.analysts.authenticate(authorization: "Bearer " + key, purpose: fields["purpose"]) {
            case .failure(let denied):
                Self.signIns["refused"]?.increment()
                let message =
                    denied.code == "missing-purpose"
                    ? "Declare the purpose of your reads (1 to 200 characters)."
                    : "The analyst key is unknown or revoked."
                return Self.page(Pages.signIn(problem: message, next: next), status: .unauthorized)
            case .success(let credential):
                let mayApprove = try await operations.mayApprove(analyst: credential.analyst)
                let (token, _) = sessions.signIn(credential, mayApprove: mayApprove, now: now())
                Self.signIns["accepted"]?.increment()
                logger.info("console sign-in", metadata: ["analyst": "\(credential.analyst)"])
                var response = Self.redirect(next ?? "/console/dashboard")
                response.setCookie(sessionCookie(token, maxAge: Int(configuration.sessionLifetime.components.seconds)))
                return response
            }
        }
    }

    func signOut(_ request: Request) async throws -> Response {
        let fields: [String: String]
        switch try await form(of: request) {
        case .failure(let refusal): return refusal.response
        case .success(let read): fields = read
        }
        if let token = request.cookies[Self.cookie]?.value, let session = sessions.session(token: token, now: now()) {
            guard fields["formToken"] == session.formToken else { return Self.forbiddenForm() }
            sessions.signOut(token: token)
        }
        var response = Self.redirect("/console/sign-in")
        response.setCookie(sessionCookie("", maxAge: 0))
        return response
    }

    func sessionCookie(_ value: String, maxAge: Int) -> Cookie {
        Cookie(
            name: Self.cookie,
            value: value,
            maxAge: maxAge,
            path: "/console",
            secure: configuration.secureCookies,
            httpOnly: true,
            sameSite: .strict
        )
    }

    // MARK: Pages

    func dashboard(_ session: ConsoleSession) async throws -> Response {
        let instant = now()
        let since = Instant(
            microsecondsSinceEpoch: instant.microsecondsSinceEpoch - configuration.dashboardWindow.microseconds
        )
        return try await databaseWork {
            async let facts = operations.dashboard(since: since)
            async let proposals = operations.proposals()
            return Self.page(
                Pages.dashboard(
                    try await facts,
                    proposals: try await proposals,
                    configuration: configuration,
                    now: instant,
                    session: session
                )
            )
        }
    }

    /// What a person page or an evidence download asks for.
    struct PersonQuery {
        var subject: String
        var at: Instant
        var knownAt: Instant
        var ruleSetName: String?
        var ruleSet: Policy?
        var page: ExplanationPage?
    }

    /// The person, instants and rule set of the query string; a page naming what is wrong otherwise.
    func personQuery(_ request: Request, session: ConsoleSession) async throws -> Result<PersonQuery, PageRefusal> {
        let parameters = request.uri.queryParameters
        let subject = parameters["subject"].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        func refuse(_ message: String, status: HTTPResponse.Status = .badRequest) -> Result<PersonQuery, PageRefusal> {
            .failure(
                PageRefusal(
                    Pages.layout(
                        title: "Person explanation",
                        session: session,
                        current: "people",
                        "\(Pages.problem(message))\(Pages.personForm(subject: subject, at: nil, knownAt: nil, ruleSet: nil))"
                    ),
                    status: status
                )
            )
        }
        guard Pseudonymizer.isPseudonym(subject) else {
            return refuse("A pseudonym is 32 lowercase hexadecimal characters.")
        }
        var at = now()
        if let value = parameters["at"], !value.isEmpty {
            guard let instant = Display.instant(parsing: value) else {
                return refuse("\"At\" must be a date and time, such as 2020-04-03T10:00:00.")
            }
            at = instant
        }
        var knownAt = at
        if let value = parameters["knownAt"], !value.isEmpty {
            guard let instant = Display.instant(parsing: value) else {
                return refuse("\"Known at\" must be a date and time, such as 2020-04-03T10:00:00.")
            }
            knownAt = instant
        }
        var query = PersonQuery(subject: subject, at: at, knownAt: knownAt)
        if let value = parameters["ruleSet"], !value.isEmpty {
            let name = String(value)
            guard name.utf8.count <= 200 else { return refuse("A rule set's name has at most 200 characters.") }
            do {
                guard let policy = try await api.queries.policy(named: name) else {
                    return refuse(
                        "No activated rule set is named \(name) (see healthcode rules list).",
                        status: .notFound
                    )
                }
                query.ruleSetName = name
                query.ruleSet = policy
            } catch let error as RuleSetNameError {
                return refuse(error.description)
            }
        }
        if let value = parameters["page"], !value.isEmpty {
            guard let page = ExplanationPage(token: String(value)) else {
                return refuse("The page token is not one this console handed out.")
            }
            query.page = page
        }
        return .success(query)
    }

    func person(_ request: Request, session: ConsoleSession) async throws -> Response {
        guard request.uri.queryParameters["subject"] != nil else {
            return Self.page(
                Pages.layout(
                    title: "Person explanation",
                    session: session,
                    current: "people",
                    Pages.personForm(subject: "", at: nil, knownAt: nil, ruleSet: nil)
                )
            )
        }
        return try await databaseWork {
            let query: PersonQuery
            switch try await personQuery(request, session: session) {
            case .failure(let refusal): return refusal.response
            case .success(let read): query = read
            }
            // Recorded before anything is read: a read that cannot be recorded is not served.
            try await api.analysts.recordRead(
                by: session.credential,
                subject: query.subject,
                endpoint: "explain"
            )
            let explanation = try await api.explanations.explain(
                query.subject,
                at: query.at,
                knownAt: query.knownAt,
                ruleSet: query.ruleSet,
                page: query.page
            )
            let window = Self.window(of: explanation)
            let band = try await api.explanations.statusHistory(
                query.subject,
                from: window.from,
                to: window.to,
                knownAt: query.knownAt,
                ruleSet: query.ruleSet,
                instants: explanation.timeline.map(\.time) + explanation.firingRules.map(\.since)
            )
            var parameters = [
                ("subject", query.subject), ("at", query.at.rfc3339), ("knownAt", query.knownAt.rfc3339),
            ]
            if let name = query.ruleSetName { parameters.append(("ruleSet", name)) }
            let earlier = explanation.earlierPage.map {
                "/console/people?" + Self.queryString(parameters + [("page", $0)])
            }
            return Self.page(
                Pages.person(
                    explanation,
                    band: band,
                    window: window,
                    ruleSetName: query.ruleSetName,
                    evidenceLink: "/console/people/evidence?" + Self.queryString(parameters),
                    earlierLink: earlier,
                    session: session
                )
            )
        }
    }

    /// The span the timeline shows: the page's events and the rules' starts, up to `at` (and any later event
    /// on the page), with a little room on both sides; two weeks before `at` when there is nothing.
    static func window(of explanation: PersonExplanation) -> (from: Instant, to: Instant) {
        let instants =
            explanation.timeline.map(\.time) + explanation.firingRules.map(\.since) + [explanation.at]
        var from = instants.min() ?? explanation.at
        var to = max(instants.max() ?? explanation.at, explanation.at)
        if to.microsecondsSinceEpoch - from.microsecondsSinceEpoch < 3_600_000_000 {
            from = Instant(microsecondsSinceEpoch: to.microsecondsSinceEpoch - 14 * 86_400_000_000)
        }
        let room = (to.microsecondsSinceEpoch - from.microsecondsSinceEpoch) / 30
        from = Instant(microsecondsSinceEpoch: from.microsecondsSinceEpoch - room)
        to = Instant(microsecondsSinceEpoch: to.microsecondsSinceEpoch + room)
        return (from, to)
    }

    func evidence(_ request: Request, session: ConsoleSession) async throws -> Response {
        try await databaseWork {
            let query: PersonQuery
            switch try await personQuery(request, session: session) {
            case .failure(let refusal): return refusal.response
            case .success(let read): query = read
            }
            try await api.analysts.recordRead(
                by: session.credential,
                subject: query.subject,
                endpoint: "evidence"
            )
            let bundle = try await operations.evidence(
                of: query.subject,
                at: query.at,
                knownAt: query.knownAt,
                ruleSet: query.ruleSetName,
                context: [("analyst", session.analyst), ("purpose", session.purpose), ("via", "console")]
            )
            var headers = Self.securityHeaders
            headers[.contentType] = "application/json"
            headers[.contentDisposition] =
                "attachment; filename=\"evidence-\(query.subject.prefix(12))-\(Display.field(query.at).replacingOccurrences(of: ":", with: "")).json\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bundle)))
        }
    }

    func proposal(
        _ id: Int64?,
        notice: String?,
        problem: String? = nil,
        session: ConsoleSession
    ) async throws
        -> Response
    {
        try await databaseWork {
            guard let id, let proposal = try await operations.proposal(id) else {
                return Self.page(
                    Pages.layout(
                        title: "Proposal",
                        session: session,
                        current: "proposals",
                        Pages.problem("No held change has this number.")
                    ),
                    status: .notFound
                )
            }
            let done = notice.flatMap { ["approve": "Approved.", "reject": "Rejected."][$0] }
            return Self.page(
                Pages.proposal(proposal, notice: done, problem: problem, session: session),
                status: problem == nil ? .ok : .conflict
            )
        }
    }

    func decide(_ id: Int64?, _ request: Request, session: ConsoleSession) async throws -> Response {
        let fields: [String: String]
        switch try await form(of: request) {
        case .failure(let refusal): return refusal.response
        case .success(let read): fields = read
        }
        guard fields["formToken"] == session.formToken else { return Self.forbiddenForm() }
        guard let id else { return try await proposal(nil, notice: nil, session: session) }
        guard session.mayApprove else {
            return try await proposal(
                id,
                notice: nil,
                problem: "Your credential may not approve changes.",
                session: session
            )
        }
        guard let decision = fields["decision"], decision == "approve" || decision == "reject" else {
            return try await proposal(id, notice: nil, problem: "Choose approve or reject.", session: session)
        }
        return try await databaseWork("console decision") {
            do {
                _ = try await operations.decide(id, approve: decision == "approve", by: session.analyst)
            } catch let refusal as ProposalRefusal {
                return try await proposal(id, notice: nil, problem: refusal.detail, session: session)
            }
            logger.notice(
                "held change decided in the console",
                metadata: ["held": "\(id)", "decision": "\(decision)", "analyst": "\(session.analyst)"]
            )
            return Self.redirect("/console/proposals/\(id)?done=\(decision)")
        }
    }

    // MARK: Plumbing

    /// A form body (`application/x-www-form-urlencoded`), bounded in size and time.
    func form(of request: Request) async throws -> Result<[String: String], PageRefusal> {
        switch try await request.body.read(upTo: Self.maximumFormBytes, within: api.bodyReadTimeout) {
        case .failure(let refusal): return .failure(PageRefusal(response: refusal.response))
        case .success(let buffer):
            guard let fields = FormFields.parse(String(buffer: buffer)) else {
                return .failure(
                    PageRefusal(
                        Pages.layout(
                            title: "Bad request",
                            session: nil,
                            current: nil,
                            Pages.problem("The form could not be read.")
                        ),
                        status: .badRequest
                    )
                )
            }
            return .success(fields)
        }
    }

    /// Runs `work` (`what` it does, for logs) within `reads` times the API's read timeout (a page may take a few
    /// reads); a page saying so (503) when the database does not answer in time or fails.
    func databaseWork(
        _ what: String = "console read",
        reads: Int = 5,
        _ work: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        do {
            return try await TransactionDeadline.run(work: what, timeout: api.readTimeout * reads, work)
        } catch is TransactionTimeout {
            return Self.unavailable()
        } catch let error as CancellationError {
            throw error
        } catch {
            logger.error("\(what) failed", metadata: ["error": "\(type(of: error))"])
            return Self.unavailable()
        }
    }

    static func unavailable() -> Response {
        var response = page(
            Pages.layout(
                title: "Unavailable",
                session: nil,
                current: nil,
                Pages.problem("The database did not answer in time. Try again in a moment.")
            ),
            status: .serviceUnavailable
        )
        response.headers[.retryAfter] = "5"
        return response
    }

    static func forbiddenForm() -> Response {
        page(
            Pages.layout(
                title: "Form expired",
                session: nil,
                current: nil,
                Pages.problem("This form is not from your current session. Reload the page and try again.")
            ),
            status: .forbidden
        )
    }

    /// A file of the console's own (its stylesheet, its icon), cacheable for `maxAge` seconds.
    static func asset(_ content: String, type: String, maxAge: Int) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=\(maxAge)"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: content)))
    }

    static func page(_ html: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.markup)))
    }

    static func redirect(_ location: String) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    /// A path inside the console to return to after sign-in; anything else (another site, a scheme) is dropped.
    static func safeNext(_ next: String?) -> String? {
        guard let next, next.hasPrefix("/console/"), !next.hasPrefix("//"), !next.contains("\\"),
            next.utf8.count <= 2048, !next.contains("/console/sign-")
        else { return nil }
        return next
    }

    static func queryString(_ parameters: [(String, String)]) -> String {
        parameters.map { "\($0.0)=\(percentEncoded($0.1))" }.joined(separator: "&")
    }

    static func percentEncoded(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// `application/x-www-form-urlencoded` fields: at most 16, each name once.
enum FormFields {
    static func parse(_ body: String) -> [String: String]? {
        var fields: [String: String] = [:]
        guard !body.isEmpty else { return fields }
        let pairs = body.split(separator: "&", omittingEmptySubsequences: true)
        guard pairs.count <= 16 else { return nil }
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), fields[name] == nil else { return nil }
            guard let value = parts.count > 1 ? decode(parts[1]) : "" else { return nil }
            fields[name] = value
        }
        return fields
    }

    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A request refused with a page of its own.
struct PageRefusal: Error {
    var response: Response

    init(response: Response) {
        self.response = response
    }

    init(_ html: HTML, status: HTTPResponse.Status) {
        response = Console.page(html, status: status)
    }
}
