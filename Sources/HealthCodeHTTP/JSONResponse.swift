import Foundation
import HTTPTypes
import Hummingbird

/// JSON responses shared by the gateway and the query API.
public enum JSONResponse {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// A response with `value` encoded as JSON.
    public static func make(
        _ value: some Encodable,
        status: HTTPResponse.Status = .ok,
        headers: HTTPFields = [:]
    ) throws -> Response {
        written(ByteBuffer(bytes: try encoder.encode(value)), status: status, headers: headers)
    }

    /// A response whose body is JSON written already: by hand on hot paths, or a document kept as text.
    public static func written(
        _ body: ByteBuffer,
        status: HTTPResponse.Status = .ok,
        headers: HTTPFields = [:]
    ) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: body))
    }

    /// An RFC 9457 problem response (`application/problem+json`) naming what is wrong.
    public static func problem(
        status: HTTPResponse.Status,
        code: String,
        detail: String,
        headers: HTTPFields = [:]
    ) -> Response {
        let problem = Problem(
            type: "urn:hc:problem:\(code)",
            title: status.reasonPhrase,
            status: status.code,
            detail: detail
        )
        let data = (try? encoder.encode(problem)) ?? Data()
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct Problem: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
    }
}

/// Operational endpoints every HealthCode HTTP service serves.
public enum OperationalRoutes {
    /// Adds `GET /health` and, if `metrics` is given, `GET /metrics` (Prometheus text format).
    /// Without `health` the health answer is plain liveness; with it, its report (503 when unhealthy).
    public static func add<Context: RequestContext>(
        to router: Router<Context>,
        metrics: (@Sendable () -> [UInt8])?,
        health: (@Sendable () -> HealthReport)? = nil
    ) {
        router.get("health") { _, _ -> Response in
            guard let report = health?() else { return try JSONResponse.make(["status": "ok"]) }
            return try JSONResponse.make(report.details, status: report.isHealthy ? .ok : .serviceUnavailable)
        }
        if let metrics {
            router.get("metrics") { _, _ -> Response in
                Response(
                    status: .ok,
                    headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics()))
                )
            }
        }
    }
}

/// A component's health for `GET /health`.
public struct HealthReport: Sendable {
    public var isHealthy: Bool
    /// What the endpoint answers, e.g. the state, lag and time since the last progress.
    public var details: [String: String]

    public init(isHealthy: Bool, details: [String: String]) {
        self.isHealthy = isHealthy
        self.details = details
    }
}
