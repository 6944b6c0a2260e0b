import HTTPTypes
import HealthCodeCore
import HealthCodeHTTP
import Hummingbird
import Logging

/// The gateway's HTTP interface: `POST /v1/events` plus `/health` and `/metrics`.
public enum GatewayApplication {
    /// Builds the router; `metrics` renders the Prometheus exposition when given.
    public static func router(
        ingestion: EventIngestion,
        configuration: GatewayConfiguration,
        metrics: (@Sendable () -> [UInt8])? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.add(to: router, metrics: metrics)
        router.post("v1/events") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: configuration.maximumBodyBytes)
            } catch {
                return JSONResponse.problem(
                    status: .contentTooLarge,
                    code: "body-too-large",
                    detail: "the request body exceeds \(configuration.maximumBodyBytes) bytes; send smaller batches"
                )
            }
            let outcome = await ingestion.ingest(body.readableBytesView)
            return try response(for: outcome, configuration: configuration)
        }
        return router
    }

    /// Builds the gateway application listening where the configuration says.
    public static func make(
        ingestion: EventIngestion,
        configuration: GatewayConfiguration,
        metrics: (@Sendable () -> [UInt8])? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(ingestion: ingestion, configuration: configuration, metrics: metrics),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "healthcode-gateway"
            ),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }

    struct BatchResponse: Encodable {
        var accepted: Int
        var rejected: Int
        var failed: Int
        var results: [EventResult]
    }

    static func response(for outcome: IngestOutcome, configuration: GatewayConfiguration) throws -> Response {
        switch outcome {
        case .invalidBody(let error):
            return JSONResponse.problem(status: .badRequest, code: "invalid-batch", detail: error.description)
        case .tooManyEvents(let count, let limit):
            return JSONResponse.problem(
                status: .contentTooLarge,
                code: "batch-too-large",
                detail: "the batch holds \(count) events, at most \(limit) are accepted per request"
            )
        case .processed(let results):
            let summary = BatchResponse(
                accepted: results.count { $0.status == .accepted },
                rejected: results.count { $0.status == .rejected },
                failed: results.count { $0.status == .failed },
                results: results
            )
            if summary.failed > 0 {
                return try JSONResponse.make(
                    summary,
                    status: .serviceUnavailable,
                    headers: [.retryAfter: "\(configuration.retryAfterSeconds)"]
                )
            }
            if summary.accepted == 0 {
                return try JSONResponse.make(summary, status: .unprocessableContent)
            }
            return try JSONResponse.make(summary, status: .accepted)
        }
    }
}
