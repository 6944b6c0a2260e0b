import Foundation
import HTTPTypes
import HealthCodeCore
import HealthCodeHTTP
import Hummingbird
import Logging
import Metrics

/// What the query API answers with: codes, lookups by raw identifier, explanations and exports.
public struct QueryAPI: Sendable {
    let queries: CodeQueries
    let explanations: PersonExplanations
    let records: any PersonRecords
    let analysts: AnalystAccess
    let pseudonymizer: Pseudonymizer
    let issuer: CodeIssuer
    let verifier: SignedCodeVerifier
    let readTimeout: Duration

    /// - Parameters:
    ///   - pseudonymizer: hashes the raw identifiers of code lookups (the gateway's key).
    ///   - issuer: signs the codes of lookups and publishes its keys.
    ///   - verifier: accepts signed codes of this issuer and of the regions it recognises.
    ///   - readTimeout: longest a request may wait on PostgreSQL before it is answered 503
    ///     (``QueryAPIConfiguration/readTimeout``).
    public init(
        queries: CodeQueries,
        explanations: PersonExplanations,
        records: any PersonRecords,
        analysts: AnalystAccess,
        pseudonymizer: Pseudonymizer,
        issuer: CodeIssuer,
        verifier: SignedCodeVerifier,
        readTimeout: Duration = .seconds(2)
    ) {
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

/// The query API's HTTP interface: `GET /v1/people/{pseudonym}/code`, `POST /v1/code-lookups`,
/// the analyst endpoints `GET /v1/people/{pseudonym}/explain` and `…/export`, plus `/health` and
/// `/metrics`.
public enum QueryAPIApplication {
    /// Largest code-lookup body: `{"subject": …}` with an identifier of at most 128 characters.
    static let maximumLookupBytes = 1024
    static let refusals: [Int: Counter] = Dictionary(
        uniqueKeysWithValues: [401, 403, 503].map {
            ($0, Counter(label: "hc_api_refusals_total", dimensions: [("status", "\($0)")]))
        }
    )

    struct LookupRequest: Decodable {
        var subject: String
    }

    struct LookupAnswer: Encodable {
        var code: PersonCode
        var signedCode: SignedCode
    }

    struct VerificationRequest: Decodable {
        var token: String
    }

    struct VerificationAnswer: Encodable {
        var valid: Bool
        var reason: String?
        var issuer: String?
        var subject: String?
        var status: String?
        var issuedAt: Instant?
        var expiresAt: Instant?
    }

    /// Builds the router. `now` is the clock (injectable for tests).
    public static func router(
        api: QueryAPI,
        now: @escaping @Sendable () -> Instant,
        metrics: (@Sendable () -> [UInt8])? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
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
                // A code kept in memory needs no database, so no read deadline (a task and a timer less).
                if at == current, knownAt == nil || knownAt == current,
                    let kept = api.queries.keptCode(of: subject, now: current)
                {
                    return JSONResponse.written(ByteBuffer(bytes: kept.jsonBytes()))
                }
                return try await databaseRead(api) {
                    let code = try await api.queries.code(of: subject, at: at, knownAt: knownAt, now: current)
                    return JSONResponse.written(ByteBuffer(bytes: code.jsonBytes()))
                }
            }
        }
        router.post("v1/code-lookups") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maximumLookupBytes)
            } catch {
                return JSONResponse.problem(
                    status: .contentTooLarge,
                    code: "body-too-large",
                    detail: "a code lookup is {\"subject\": identifier}, at most \(maximumLookupBytes) bytes"
                )
            }
            guard let lookup = try? JSONDecoder().decode(LookupRequest.self, from: Data(body.readableBytesView)),
                (1...128).contains(lookup.subject.count)
            else {
                return JSONResponse.problem(
                    status: .badRequest,
                    code: "invalid-lookup",
                    detail: "the body must be {\"subject\": identifier} with an identifier of 1 to 128 characters"
                )
            }
            // The raw identifier is hashed here and goes no further: not logged, not stored.
            let subject = api.pseudonymizer.pseudonym(of: lookup.subject)
            let current = now()
            return try await databaseRead(api) {
                let code = try await api.queries.code(of: subject, at: current, knownAt: nil, now: current)
                let signed = try await api.issuer.sign(
                    subject: subject,
                    status: code.status,
                    issuedAt: current,
                    validUntil: code.validUntil
                )
                return try JSONResponse.make(LookupAnswer(code: code, signedCode: signed))
            }
        }
        router.get(".well-known/jwks.json") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "application/jwk-set+json", .cacheControl: "max-age=300"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: api.issuer.jwks))
            )
        }
        router.post("v1/code-verifications") { request, _ -> Response in
            guard let body = try? await request.body.collect(upTo: 8192) else {
                return JSONResponse.problem(
                    status: .contentTooLarge,
                    code: "body-too-large",
                    detail: "a verification is {\"token\": compact JWS}, at most 8192 bytes"
                )
            }
            guard
                let verification = try? JSONDecoder().decode(
                    VerificationRequest.self,
                    from: Data(body.readableBytesView)
                )
            else {
                return JSONResponse.problem(
                    status: .badRequest,
                    code: "invalid-verification",
                    detail: "the body must be {\"token\": compact JWS}"
                )
            }
            switch await api.verifier.verify(verification.token) {
            case .success(let claims):
                return try JSONResponse.make(
                    VerificationAnswer(
                        valid: true,
                        issuer: claims.iss.value,
                        subject: claims.sub.value,
                        status: claims.status,
                        issuedAt: Instant(date: claims.iat.value),
                        expiresAt: Instant(date: claims.exp.value)
                    )
                )
            case .failure(let rejection):
                return try JSONResponse.make(VerificationAnswer(valid: false, reason: rejection.code))
            }
        }
        router.get("v1/people/:pseudonym/explain") { request, context -> Response in
            let subject = try context.parameters.require("pseudonym")
            let instants = instants(of: request, now: now())
            return try await analystRead(request, subject: subject, endpoint: "explain", api: api) {
                switch instants {
                case .failure(let problem):
                    return problem.response
                case .success(let (at, knownAt)):
                    return try JSONResponse.make(try await api.explanations.explain(subject, at: at, knownAt: knownAt))
                }
            }
        }
        router.get("v1/people/:pseudonym/export") { request, context -> Response in
            let subject = try context.parameters.require("pseudonym")
            return try await analystRead(request, subject: subject, endpoint: "export", api: api) {
                try exportResponse(subject: subject, tables: try await api.records.subjectAccessExport(of: subject))
            }
        }
        return router
    }

    /// Authenticates the analyst, records the read, then serves it.
    static func analystRead(
        _ request: Request,
        subject: String,
        endpoint: String,
        api: QueryAPI,
        serve: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        if let problem = invalidPseudonym(subject) { return problem }
        let authorization = request.headers[.authorization]
        let purpose = request.headers[HTTPField.Name("X-HC-Purpose")!]
        let response = try await databaseRead(api) {
            switch try await api.analysts.authenticate(authorization: authorization, purpose: purpose) {
            case .failure(let denied):
                return JSONResponse.problem(
                    status: denied.code == "missing-purpose" ? .forbidden : .unauthorized,
                    code: denied.code,
                    detail: denied.reason,
                    headers: denied.code == "missing-purpose"
                        ? [:] : [.wwwAuthenticate: "Bearer realm=\"healthcode-api\""]
                )
            case .success(let credential):
                try await api.analysts.recordRead(by: credential, subject: subject, endpoint: endpoint)
                return try await serve()
            }
        }
        if response.status != .serviceUnavailable { refusals[response.status.code]?.increment() }
        return response
    }

    /// Runs a request's PostgreSQL work within ``QueryAPI/readTimeout``. A database that does not answer
    /// in time, or fails (stopped, unreachable, connections refused), makes the answer a 503 problem
    /// `database-unavailable` with `Retry-After`, in bounded time: never a hang or an undocumented 500.
    /// The abandoned read is cancelled and left to end on its own (``TransactionDeadline``).
    static func databaseRead(
        _ api: QueryAPI,
        _ work: @escaping @Sendable () async throws -> Response
    ) async throws -> Response {
        do {
            return try await TransactionDeadline.run(work: "read", timeout: api.readTimeout, work)
        } catch let error where error is TransactionTimeout || error is RedactedError {
            refusals[503]?.increment()
            let seconds = max(1, Int((api.readTimeout / .seconds(1)).rounded(.up)))
            return JSONResponse.problem(
                status: .serviceUnavailable,
                code: "database-unavailable",
                detail: "the code store did not answer in time; ask again after Retry-After seconds",
                headers: [.retryAfter: "\(seconds)"]
            )
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
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(api: api, now: now, metrics: metrics),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "healthcode-api"
            ),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }
}
