import Foundation
import HTTPTypes
import HealthCodeCore
import HealthCodeHTTP
import Hummingbird
import Logging
import Metrics

/// What the query API answers with: codes, lookups by raw identifier, explanations and exports.
public struct QueryAPI: Sendable {
    /// Codes and replays (the console reads through them too).
    public let queries: CodeQueries
    public let explanations: PersonExplanations
    let records: any PersonRecords
    /// Analyst authentication and the audit trail every read goes through.
    public let analysts: AnalystAccess
    let pseudonymizer: Pseudonymizer
    let issuer: CodeIssuer
    /// Verifies signed codes of this issuer and of the trusted regions (their keys, ``TrustedKeySets``).
    public let verifier: SignedCodeVerifier
    let trustedLocations: [String: JWKSLocation]
    /// The registered client platforms (read again in the background by ``QueryAPIServer``; tests that
    /// use only the router call ``ClientPlatformRegistry/refresh()`` themselves).
    public let platforms: ClientPlatformRegistry
    let throttle: RequestThrottle
    let unknownPeople: UnknownPeople
    let verificationRequiresHolder: Bool
    /// Holder checks in progress (each costs tens of milliseconds of a core; verification is public).
    let holderChecks: Admission
    /// Longest a request waits on PostgreSQL before it is answered 503.
    public let readTimeout: Duration
    /// Longest a request body may take to arrive.
    public let bodyReadTimeout: Duration

    /// - Parameters:
    ///   - pseudonymizer: hashes the raw identifiers of code lookups (the gateway's key).
    ///   - issuer: signs the codes of lookups and publishes its keys.
    ///   - verifier: accepts signed codes of this issuer and of the regions it recognises.
    ///   - trustedLocations: where the other regions' keys are fetched (by ``QueryAPIServer``).
    ///   - platforms: the registered client platforms.
    ///   - throttle: the rate limits per platform and per person.
    ///   - unknownPeople: whether a person nothing is recorded about gets a code.
    ///   - verificationRequiresHolder: whether verifications must name the holder's identifier.
    ///   - maximumConcurrentHolderChecks: holder checks computed at once before verifications are shed.
    ///   - readTimeout: longest a request may wait on PostgreSQL before it is answered 503
    ///     (``QueryAPIConfiguration/readTimeout``).
    ///   - bodyReadTimeout: longest a request body may take to arrive before 408
    ///     (``HTTPTimeouts/bodyReadTimeout``).
    public init(
        queries: CodeQueries,
        explanations: PersonExplanations,
        records: any PersonRecords,
        analysts: AnalystAccess,
        pseudonymizer: Pseudonymizer,
        issuer: CodeIssuer,
        verifier: SignedCodeVerifier,
        trustedLocations: [String: JWKSLocation] = [:],
        platforms: ClientPlatformRegistry,
        throttle: RequestThrottle,
        unknownPeople: UnknownPeople = .refuse,
        verificationRequiresHolder: Bool = true,
        maximumConcurrentHolderChecks: Int = 8,
        readTimeout: Duration = .seconds(2),
        bodyReadTimeout: Duration = HTTPTimeouts().bodyReadTimeout
    ) {
        self.bodyReadTimeout = bodyReadTimeout
        self.holderChecks = Admission(limit: maximumConcurrentHolderChecks)
        self.trustedLocations = trustedLocations
        self.platforms = platforms
        self.throttle = throttle
        self.unknownPeople = unknownPeople
        self.verificationRequiresHolder = verificationRequiresHolder
        self.readTimeout = readTimeout
        self.queries = queries
        self.explanations = explanations
        self.records = records
        self.analysts = analysts
        self.pseudonymizer = pseudonymizer
        self.issuer = issuer
        self.verifier = verifier
    }
}

/// The query API's HTTP interface. Public: `GET /.well-known/jwks.json`, `POST /v1/code-verifications`,
/// `/openapi.json`, `/health`, `/metrics`. Residents' platforms: `POST /v1/code-lookups`. Readers
/// (checkpoint platforms, analysts), every read audited: `GET /v1/people/{pseudonym}/code`. Analysts:
/// `GET /v1/people/{pseudonym}/explain` and `…/export`.
public enum QueryAPIApplication {
    /// Routes served beside the API's own, given the assembled API (the web console adds its pages).
    public typealias AdditionalRoutes = @Sendable (QueryAPI, Router<BasicRequestContext>) -> Void

    /// Largest code-lookup body: `{"subject": …}` with an identifier of at most 128 characters.
    static let maximumLookupBytes = 1024
    /// Longest identifier (of a lookup, or a holder's document in a verification).
    static let maximumIdentifierLength = 128
    static let refusals: [Int: Counter] = Dictionary(
        uniqueKeysWithValues: [401, 403, 404, 429, 503].map {
            ($0, Counter(label: "hc_api_refusals_total", dimensions: [("status", "\($0)")]))
        }
    )
    static let purposeHeader = HTTPField.Name("X-HC-Purpose")!

    struct LookupRequest: Decodable {
        var subject: String
    }

    struct LookupAnswer: Encodable {
        var code: PersonCode
        var signedCode: SignedCode
    }

    struct VerificationRequest: Decodable {
        var token: String
        var holder: String?
    }

    struct VerificationAnswer: Encodable {
        var valid: Bool
        var reason: String?
        var issuer: String?
        var status: String?
        var issuedAt: Instant?
        var expiresAt: Instant?
        var holderChecked: Bool?
    }

    /// Builds the router. `now` is the clock (injectable for tests); `additionalRoutes` adds what else the
    /// process serves beside the API (the web console).
    public static func router(
        api: QueryAPI,
        now: @escaping @Sendable () -> Instant,
        metrics: (@Sendable () -> [UInt8])? = nil,
        additionalRoutes: AdditionalRoutes? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        additionalRoutes?(api, router)
        OperationalRoutes.add(to: router, metrics: metrics)
        router.get("openapi.json") { _, _ -> Response in
            JSONResponse.written(ByteBuffer(string: QueryAPIOpenAPI.document))
        }
        router.get("v1/people/:pseudonym/code") { request, context -> Response in
            let subject = try context.parameters.require("pseudonym")
            if let problem = invalidPseudonym(subject) { return problem }
            let current = now()
            switch instants(of: request, now: current) {
            case .failure(let problem):
                return problem.response
            case .success(let (at, knownAt)):
                return try await readerRead(request, subject: subject, endpoint: "code", api: api, platforms: true) {
                    let ruleSet: Policy?
                    switch try await namedRuleSet(of: request, api: api) {
                    case .failure(let problem): return problem.response
                    case .success(let named): ruleSet = named
                    }
                    // A code kept in memory needs no further read.
                    if at == current, knownAt == nil || knownAt == current, ruleSet == nil,
                        let kept = api.queries.keptCode(of: subject, now: current)
                    {
                        return JSONResponse.written(ByteBuffer(bytes: kept.jsonBytes()))
                    }
                    guard
                        let found = try await personCode(
                            api,
                            of: subject,
                            at: at,
                            knownAt: knownAt,
                            ruleSet: ruleSet,
                            now: current
                        )
                    else {
                        return unknownPerson()
                    }
                    return JSONResponse.written(ByteBuffer(bytes: found.jsonBytes()))
                }
            }
        }
        router.post("v1/code-lookups") { request, _ -> Response in
            let platform: ClientPlatformRecord
            switch authenticatePlatform(request, api: api, kind: .resident) {
            case .failure(let problem): return problem.response
            case .success(let authenticated): platform = authenticated
            }
            let body: ByteBuffer
            switch try await request.body.read(upTo: maximumLookupBytes, within: api.bodyReadTimeout) {
            case .success(let complete): body = complete
            case .failure(let refusal): return refusal.response
            }
            guard let lookup = try? JSONDecoder().decode(LookupRequest.self, from: Data(body.readableBytesView)),
                (1...maximumIdentifierLength).contains(lookup.subject.count)
            else {
                return JSONResponse.problem(
                    status: .badRequest,
                    code: "invalid-lookup",
                    detail: "the body must be {\"subject\": identifier} with an identifier of 1 to 128 characters"
                )
            }
            // The raw identifier is hashed here and committed to in the signed code; it goes no further:
            // not logged, not stored, not in any answer.
            let subject = api.pseudonymizer.pseudonym(of: lookup.subject)
            if let refused = throttled(api.throttle.take(platform: platform, person: subject)) { return refused }
            let current = now()
            let read = try await databaseValue(api) {
                try await personCode(api, of: subject, at: current, knownAt: nil, now: current)
            }
            let code: PersonCode
            switch read {
            case .failure(let problem): return problem.response
            case .success(nil): return unknownPerson()
            case .success(let found?): code = found
            }
            let signed = try await api.issuer.sign(
                holder: lookup.subject,
                holderKey: subject,
                status: code.status,
                issuedAt: current,
                validUntil: code.validUntil
            )
            return try JSONResponse.make(LookupAnswer(code: code, signedCode: signed))
        }
        router.get(".well-known/jwks.json") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/jwk-set+json", .cacheControl: "max-age=300"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: api.issuer.jwks))
            )
        }
        router.post("v1/code-verifications") { request, _ -> Response in
            let body: ByteBuffer
            switch try await request.body.read(upTo: 8192, within: api.bodyReadTimeout) {
            case .success(let complete): body = complete
            case .failure(let refusal): return refusal.response
            }
            guard
                let verification = try? JSONDecoder().decode(
                    VerificationRequest.self,
                    from: Data(body.readableBytesView)
                ),
                verification.holder.map({ (1...maximumIdentifierLength).contains($0.count) }) ?? true
            else {
                return JSONResponse.problem(
                    status: .badRequest,
                    code: "invalid-verification",
                    detail: "the body must be {\"token\": compact JWS, \"holder\": the identifier on the holder's "
                        + "document, 1 to 128 characters}"
                )
            }
            if verification.holder == nil, api.verificationRequiresHolder {
                return try JSONResponse.make(VerificationAnswer(valid: false, reason: "holder-required"))
            }
            let current = now()
            guard
                let result = await api.holderChecks.run({
                    await api.verifier.verify(verification.token, holder: verification.holder, now: current)
                })
            else {
                refusals[503]?.increment()
                return JSONResponse.problem(
                    status: .serviceUnavailable,
                    code: "busy",
                    detail: "too many verifications at once; ask again after Retry-After seconds",
                    headers: [.retryAfter: "1"]
                )
            }
            switch result {
            case .success(let verified):
                return try JSONResponse.make(
                    VerificationAnswer(
                        valid: true,
                        issuer: verified.claims.iss.value,
                        status: verified.claims.status,
                        issuedAt: verified.issuedAt,
                        expiresAt: verified.expiresAt,
                        holderChecked: verified.holderChecked
                    )
                )
            case .failure(let rejection):
                return try JSONResponse.make(VerificationAnswer(valid: false, reason: rejection.code))
            }
        }
        router.get("v1/people/:pseudonym/explain") { request, context -> Response in
            let subject = try context.parameters.require("pseudonym")
            let instants = instants(of: request, now: now())
            let paging = explanationPaging(of: request)
            return try await readerRead(request, subject: subject, endpoint: "explain", api: api, platforms: false) {
                switch (instants, paging) {
                case (.failure(let problem), _), (_, .failure(let problem)):
                    return problem.response
                case (.success(let (at, knownAt)), .success(let (page, limit))):
                    switch try await namedRuleSet(of: request, api: api) {
                    case .failure(let problem):
                        return problem.response
                    case .success(let ruleSet):
                        return try JSONResponse.make(
                            try await api.explanations.explain(
                                subject,
                                at: at,
                                knownAt: knownAt,
                                ruleSet: ruleSet,
                                page: page,
                                limit: limit
                            )
                        )
                    }
                }
            }
        }
        router.get("v1/people/:pseudonym/export") { request, context -> Response in
            let subject = try context.parameters.require("pseudonym")
            return try await readerRead(request, subject: subject, endpoint: "export", api: api, platforms: false) {
                try exportResponse(subject: subject, tables: try await api.records.subjectAccessExport(of: subject))
            }
        }
        return router
    }

    /// The code of a person, or `nil` for one nothing is recorded about unless unknown people are green.
    static func personCode(
        _ api: QueryAPI,
        of subject: String,
        at: Instant,
        knownAt: Instant?,
        ruleSet: Policy? = nil,
        now: Instant
    )
        async throws -> PersonCode?
    {
        switch api.unknownPeople {
        case .refuse:
            return try await api.queries.knownCode(of: subject, at: at, knownAt: knownAt, ruleSet: ruleSet, now: now)
        case .green:
            return try await api.queries.code(of: subject, at: at, knownAt: knownAt, ruleSet: ruleSet, now: now)
        }
    }

    /// The rule set the query string names (`ruleSet=`: a hash or `ID@VERSION` of an activated rule set); `nil`
    /// when it names none, so that the rules in force at `knownAt` judge.
    static func namedRuleSet(of request: Request, api: QueryAPI) async throws -> Result<Policy?, ProblemResponse> {
        guard let value = request.uri.queryParameters["ruleSet"] else { return .success(nil) }
        let name = String(value)
        guard (1...200).contains(name.utf8.count) else {
            return .failure(
                ProblemResponse(
                    JSONResponse.problem(
                        status: .badRequest,
                        code: "invalid-rule-set",
                        detail: "query parameter 'ruleSet' must be a rule set's hash (sha256:…) or ID@VERSION"
                    )
                )
            )
        }
        do {
            guard let policy = try await api.queries.policy(named: name) else {
                return .failure(
                    ProblemResponse(
                        JSONResponse.problem(
                            status: .notFound,
                            code: "unknown-rule-set",
                            detail: "query parameter 'ruleSet' names no activated rule set (see healthcode rules list)"
                        )
                    )
                )
            }
            return .success(policy)
        } catch let error as RuleSetNameError {
            return .failure(
                ProblemResponse(
                    JSONResponse.problem(status: .badRequest, code: "ambiguous-rule-set", detail: error.description)
                )
            )
        }
    }

    static func unknownPerson() -> Response {
        refusals[404]?.increment()
        return JSONResponse.problem(
            status: .notFound,
            code: "unknown-person",
            detail: "nothing is recorded about this person, and this API gives no code to unknown people"
        )
    }

    /// The client platform proven by the request's key, if it is of `kind`; else a 401 or 403 problem.
    static func authenticatePlatform(
        _ request: Request,
        api: QueryAPI,
        kind: ClientPlatformRecord.Kind
    ) -> Result<ClientPlatformRecord, ProblemResponse> {
        guard let key = Bearer.credential(in: request.headers[.authorization]) else {
            return .failure(
                unauthorized(
                    "missing-credentials",
                    "send 'Authorization: Bearer' with the key of a registered \(kind.rawValue) platform"
                )
            )
        }
        guard let platform = api.platforms.platform(key: key) else {
            return .failure(unauthorized("invalid-credentials", "the platform key is unknown or removed"))
        }
        guard platform.kind == kind else {
            refusals[403]?.increment()
            return .failure(
                ProblemResponse(
                    JSONResponse.problem(
                        status: .forbidden,
                        code: "forbidden-platform",
                        detail: "this endpoint is for \(kind.rawValue) platforms"
                    )
                )
            )
        }
        return .success(platform)
    }

    static func unauthorized(_ code: String, _ detail: String) -> ProblemResponse {
        refusals[401]?.increment()
        return ProblemResponse(
            JSONResponse.problem(
                status: .unauthorized,
                code: code,
                detail: detail,
                headers: [.wwwAuthenticate: "Bearer realm=\"healthcode-api\""]
            )
        )
    }

    /// 429 with `Retry-After` (whole seconds, at least 1) for a refused request; `nil` if admitted.
    static func throttled(_ action: RequestThrottle.State.Action) -> Response? {
        guard case .reject(let wait, let scope) = action else { return nil }
        refusals[429]?.increment()
        let seconds = wait.retryAfterSeconds
        return JSONResponse.problem(
            status: .tooManyRequests,
            code: "rate-limited",
            detail: scope == "person"
                ? "too many requests about this person; ask again after Retry-After seconds"
                : "this platform exceeds its rate; ask again after Retry-After seconds",
            headers: [.retryAfter: "\(seconds)"]
        )
    }

    /// Authenticates the reader (a checkpoint platform if `platforms`, or an analyst with a declared
    /// purpose), charges the rate limits, records the read, then serves it.
    static func readerRead(
        _ request: Request,
        subject: String,
        endpoint: String,
        api: QueryAPI,
        platforms: Bool,
        serve: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        if let problem = invalidPseudonym(subject) { return problem }
        let authorization = request.headers[.authorization]
        let purpose = request.headers[purposeHeader]
        if platforms, let key = Bearer.credential(in: authorization), key.hasPrefix(ClientPlatformRegistry.keyPrefix) {
            let platform: ClientPlatformRecord
            switch authenticatePlatform(request, api: api, kind: .checkpoint) {
            case .failure(let problem): return problem.response
            case .success(let authenticated): platform = authenticated
            }
            if let refused = throttled(api.throttle.take(platform: platform, person: subject)) { return refused }
            let declared = AnalystAccess.purpose(purpose) ?? "checkpoint"
            return try await databaseRead(api) {
                try await api.analysts.recordRead(
                    byPlatform: platform.id,
                    purpose: declared,
                    subject: subject,
                    endpoint: endpoint
                )
                return try await serve()
            }
        }
        let response = try await databaseRead(api) {
            switch try await api.analysts.authenticate(authorization: authorization, purpose: purpose) {
            case .failure(let denied):
                return JSONResponse.problem(
                    status: denied.code == "missing-purpose" ? .forbidden : .unauthorized,
                    code: denied.code,
                    detail: platforms && denied.code != "missing-purpose"
                        ? "send 'Authorization: Bearer' with a checkpoint platform key, or an analyst key and "
                            + "X-HC-Purpose"
                        : denied.reason,
                    headers: denied.code == "missing-purpose"
                        ? [:] : [.wwwAuthenticate: "Bearer realm=\"healthcode-api\""]
                )
            case .success(let credential):
                try await api.analysts.recordRead(by: credential, subject: subject, endpoint: endpoint)
                return try await serve()
            }
        }
        if response.status != .serviceUnavailable, response.status != .notFound {
            refusals[response.status.code]?.increment()
        }
        return response
    }

    /// Like ``databaseRead(_:_:)`` for work that yields a value: the value, or the 503 problem.
    static func databaseValue<Value: Sendable>(
        _ api: QueryAPI,
        _ work: @escaping @Sendable () async throws -> Value
    ) async throws -> Result<Value, ProblemResponse> {
        do {
            return .success(try await TransactionDeadline.run(work: "read", timeout: api.readTimeout, work))
        } catch let error where error is TransactionTimeout || error is RedactedError {
            return .failure(ProblemResponse(databaseUnavailable(api)))
        }
    }

    static func databaseUnavailable(_ api: QueryAPI) -> Response {
        refusals[503]?.increment()
        let seconds = api.readTimeout.retryAfterSeconds
        return JSONResponse.problem(
            status: .serviceUnavailable,
            code: "database-unavailable",
            detail: "the code store did not answer in time; ask again after Retry-After seconds",
            headers: [.retryAfter: "\(seconds)"]
        )
    }

    /// Runs a request's PostgreSQL work within ``QueryAPI/readTimeout``. A database that does not answer
    /// in time, or fails (stopped, unreachable, connections refused), makes the answer a 503 problem
    /// `database-unavailable` with `Retry-After`, in bounded time: never a hang or an undocumented 500.
    /// The abandoned read is cancelled and left to end on its own (``TransactionDeadline``).
    static func databaseRead(
        _ api: QueryAPI,
        _ work: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        switch try await databaseValue(api, work) {
        case .success(let response): response
        case .failure(let problem): problem.response
        }
    }

    static func invalidPseudonym(_ subject: String) -> Response? {
        guard !Pseudonymizer.isPseudonym(subject) else { return nil }
        return JSONResponse.problem(
            status: .badRequest,
            code: "invalid-pseudonym",
            detail: "the path must hold a pseudonym: 32 lowercase hexadecimal characters"
        )
    }

    /// `at` (default now) and `knownAt` (default `at`) from the query string.
    static func instants(of request: Request, now: Instant) -> Result<(Instant, Instant?), ProblemResponse> {
        var at = now
        var knownAt: Instant?
        for (name, value) in [
            ("at", request.uri.queryParameters["at"]), ("knownAt", request.uri.queryParameters["knownAt"]),
        ] {
            guard let value else { continue }
            guard let instant = Instant(rfc3339: String(value)) else {
                return .failure(
                    ProblemResponse(
                        JSONResponse.problem(
                            status: .badRequest,
                            code: "invalid-instant",
                            detail: "query parameter '\(name)' must be an RFC 3339 instant such as 2020-04-03T10:00:00Z"
                        )
                    )
                )
            }
            if name == "at" { at = instant } else { knownAt = instant }
        }
        return .success((at, knownAt))
    }

    /// An explanation's `page` (a token from an earlier answer's `earlierPage`) and `limit` (events per page,
    /// 1 to ``PersonExplanations/maximumPageSize``, default ``PersonExplanations/defaultPageSize``).
    static func explanationPaging(of request: Request) -> Result<(ExplanationPage?, Int), ProblemResponse> {
        func invalid(_ detail: String) -> Result<(ExplanationPage?, Int), ProblemResponse> {
            .failure(
                ProblemResponse(JSONResponse.problem(status: .badRequest, code: "invalid-page", detail: detail))
            )
        }
        var limit = PersonExplanations.defaultPageSize
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(String(text)), (1...PersonExplanations.maximumPageSize).contains(value) else {
                return invalid(
                    "query parameter 'limit' must be a whole number from 1 to \(PersonExplanations.maximumPageSize)"
                )
            }
            limit = value
        }
        var page: ExplanationPage?
        if let token = request.uri.queryParameters["page"] {
            guard let value = ExplanationPage(token: String(token)) else {
                return invalid("query parameter 'page' must be an earlierPage token from an earlier explanation")
            }
            page = value
        }
        return .success((page, limit))
    }

    /// A problem response carried as an error value.
    struct ProblemResponse: Error {
        var response: Response
        init(_ response: Response) { self.response = response }
    }

    static func exportResponse(subject: String, tables: [(table: String, rowsJSON: String)]) throws -> Response {
        let encoder = JSONEncoder()
        var json = "{\"subject\":" + String(decoding: try encoder.encode(subject), as: UTF8.self) + ",\"tables\":{"
        for (index, table) in tables.enumerated() {
            if index > 0 { json += "," }
            json += String(decoding: try encoder.encode(table.table), as: UTF8.self) + ":" + table.rowsJSON
        }
        json += "}}"
        return JSONResponse.written(ByteBuffer(string: json))
    }

    /// Builds the API application listening where the configuration says.
    public static func make(
        api: QueryAPI,
        configuration: QueryAPIConfiguration,
        now: @escaping @Sendable () -> Instant,
        metrics: (@Sendable () -> [UInt8])? = nil,
        additionalRoutes: AdditionalRoutes? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(api: api, now: now, metrics: metrics, additionalRoutes: additionalRoutes),
            server: configuration.timeouts.server,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "healthcode-api"
            ),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }
}
