import HTTPTypes
import HealthCodeCore
import HealthCodeHTTP
import Hummingbird
import Logging
import Metrics

/// The gateway's HTTP interface: `POST /v1/events` plus `/health`, `/metrics` and `/openapi.json`.
public enum GatewayApplication {
    /// Responses by refusal, for dashboards of overload (429, 503) and authorisation (401, 403).
    static let refusals: [Int: Counter] = Dictionary(
        uniqueKeysWithValues: [401, 403, 413, 429, 503].map {
            ($0, Counter(label: "hc_gateway_refusals_total", dimensions: [("status", "\($0)")]))
        }
    )

    /// Builds the router; `metrics` renders the Prometheus exposition when given.
    public static func router(
        ingestion: EventIngestion,
        publishers: PublisherRegistry,
        configuration: GatewayConfiguration,
        metrics: (@Sendable () -> [UInt8])? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        // Unhealthy while the event log cannot take events (its Kafka producer is being rebuilt after a
        // fatal error): ingest answers 503 then too.
        OperationalRoutes.add(to: router, metrics: metrics) {
            let writing = ingestion.logIsWriting
            return HealthReport(isHealthy: writing, details: ["status": writing ? "ok" : "event-log-unavailable"])
        }
        let admission = Admission(limit: configuration.maximumConcurrentRequests)
        router.get("openapi.json") { _, _ -> Response in
            JSONResponse.written(ByteBuffer(string: GatewayOpenAPI.document))
        }
        router.post("v1/events") { request, _ -> Response in
            let response = try await ingest(
                request,
                ingestion: ingestion,
                publishers: publishers,
                admission: admission,
                configuration: configuration
            )
            refusals[response.status.code]?.increment()
            return response
        }
        return router
    }

    static func ingest(
        _ request: Request,
        ingestion: EventIngestion,
        publishers: PublisherRegistry,
        admission: Admission,
        configuration: GatewayConfiguration
    ) async throws -> Response {
        let admitted = try await admission.run {
            try await ingestAdmitted(
                request,
                ingestion: ingestion,
                publishers: publishers,
                configuration: configuration
            )
        }
        guard let admitted else {
            return JSONResponse.problem(
                status: .serviceUnavailable,
                code: "overloaded",
                detail: "the gateway is at its limit of concurrent requests; retry after the indicated delay",
                headers: [.retryAfter: "\(configuration.retryAfterSeconds)"]
            )
        }
        return admitted
    }

    /// An ingest request that holds one of the ``GatewayConfiguration/maximumConcurrentRequests`` places.
    private static func ingestAdmitted(
        _ request: Request,
        ingestion: EventIngestion,
        publishers: PublisherRegistry,
        configuration: GatewayConfiguration
    ) async throws -> Response {
        let publisher: Publisher
        switch await publishers.authenticate(authorization: request.headers[.authorization]) {
        case .success(let authenticated):
            publisher = authenticated
        case .failure(let failure) where failure.code == "registry-unavailable":
            return JSONResponse.problem(
                status: .serviceUnavailable,
                code: failure.code,
                detail: failure.reason,
                headers: [.retryAfter: "\(configuration.retryAfterSeconds)"]
            )
        case .failure(let failure):
            return JSONResponse.problem(
                status: .unauthorized,
                code: failure.code,
                detail: failure.reason,
                headers: [.wwwAuthenticate: "Bearer realm=\"healthcode-gateway\""]
            )
        }
        let body: ByteBuffer
        do {
            let read = try await request.body.read(
                upTo: configuration.maximumBodyBytes,
                within: configuration.timeouts.bodyReadTimeout
            )
            switch read {
            case .success(let complete): body = complete
            case .failure(let refusal): return refusal.response
            }
        } catch {
            return JSONResponse.problem(
                status: .badRequest,
                code: "body-unreadable",
                detail: "the connection failed while the request body arrived"
            )
        }
        let outcome = await ingestion.ingest(body.readableBytesView, from: publisher)
        return response(for: outcome, configuration: configuration)
    }

    /// Builds the gateway application listening where the configuration says.
    public static func make(
        ingestion: EventIngestion,
        publishers: PublisherRegistry,
        configuration: GatewayConfiguration,
        metrics: (@Sendable () -> [UInt8])? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(
                ingestion: ingestion,
                publishers: publishers,
                configuration: configuration,
                metrics: metrics
            ),
            server: configuration.timeouts.server,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "healthcode-gateway"
            ),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }

    /// The answer to a processed batch: counts by status and one result per event, in order. Written by
    /// hand: a 500-event answer through `JSONEncoder` cost a fifth of the gateway's time.
    struct BatchResponse {
        var accepted: Int
        var duplicate: Int
        var rejected: Int
        var failed: Int
        var held: Int
        var results: [EventResult]

        /// `{"accepted","duplicate","failed","held","rejected","results":[…]}`, keys sorted like every other
        /// answer, absent fields of a result omitted.
        func jsonBytes() -> [UInt8] {
            var out = JSONWriter(capacity: 96 + results.count * 72)
            out.raw("{")
            out.key("accepted")
            out.integer(accepted)
            out.raw(",")
            out.key("duplicate")
            out.integer(duplicate)
            out.raw(",")
            out.key("failed")
            out.integer(failed)
            out.raw(",")
            out.key("held")
            out.integer(held)
            out.raw(",")
            out.key("rejected")
            out.integer(rejected)
            out.raw(",")
            out.key("results")
            out.array(results) { out, result in result.write(to: &out) }
            out.raw("}")
            return out.bytes
        }

        func response(status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
            JSONResponse.written(ByteBuffer(bytes: jsonBytes()), status: status, headers: headers)
        }
    }

    static func response(for outcome: IngestOutcome, configuration: GatewayConfiguration) -> Response {
        switch outcome {
        case .invalidBody(let error):
            return JSONResponse.problem(status: .badRequest, code: "invalid-batch", detail: error.description)
        case .rateLimited(let retryAfter):
            let seconds = retryAfter.retryAfterSeconds
            return JSONResponse.problem(
                status: .tooManyRequests,
                code: "rate-limited",
                detail: "this publisher sends faster than its rate limit; retry after the indicated delay",
                headers: [.retryAfter: "\(seconds)"]
            )
        case .tooManyEvents(let limit):
            return JSONResponse.problem(
                status: .contentTooLarge,
                code: "batch-too-large",
                detail: "the batch holds more than \(limit) events, the most accepted per request"
            )
        case .processed(let results):
            let summary = BatchResponse(
                accepted: results.count { $0.status == .accepted },
                duplicate: results.count { $0.status == .duplicate },
                rejected: results.count { $0.status == .rejected },
                failed: results.count { $0.status == .failed },
                held: results.count { $0.status == .held },
                results: results
            )
            if summary.failed > 0 {
                return summary.response(
                    status: .serviceUnavailable,
                    headers: [.retryAfter: "\(configuration.retryAfterSeconds)"]
                )
            }
            if summary.accepted == 0 && summary.duplicate == 0 && summary.held == 0 {
                // Nothing appended: 403 if every refusal is about authorisation, else 422.
                let forbidden = results.allSatisfy(\.isForbidden)
                return summary.response(status: forbidden ? .forbidden : .unprocessableContent)
            }
            return summary.response(status: .accepted)
        }
    }
}
