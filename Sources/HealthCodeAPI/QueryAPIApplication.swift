import Foundation
import HTTPTypes
import HealthCodeCore
import HealthCodeHTTP
import Hummingbird
import Logging

/// The query API's HTTP interface: `GET /v1/people/{pseudonym}/code` plus `/health` and `/metrics`.
public enum QueryAPIApplication {
    /// Builds the router. `now` is the clock (injectable for tests).
    public static func router(
        queries: CodeQueries,
        now: @escaping @Sendable () -> Instant,
        metrics: (@Sendable () -> [UInt8])? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        OperationalRoutes.add(to: router, metrics: metrics)
        router.get("v1/people/:pseudonym/code") { request, context -> Response in
            let subject = try context.parameters.require("pseudonym")
            guard Pseudonymizer.isPseudonym(subject) else {
                return JSONResponse.problem(
                    status: .badRequest,
                    code: "invalid-pseudonym",
                    detail: "the path must hold a pseudonym: 32 lowercase hexadecimal characters"
                )
            }
            let current = now()
            var at = current
            var knownAt: Instant?
            for (name, value) in [
                ("at", request.uri.queryParameters["at"]), ("knownAt", request.uri.queryParameters["knownAt"]),
            ] {
                guard let value else { continue }
                guard let instant = Instant(rfc3339: String(value)) else {
                    return JSONResponse.problem(
                        status: .badRequest,
                        code: "invalid-instant",
                        detail: "query parameter '\(name)' must be an RFC 3339 instant such as 2020-04-03T10:00:00Z"
                    )
                }
                if name == "at" { at = instant } else { knownAt = instant }
            }
            let code = try await queries.code(of: subject, at: at, knownAt: knownAt, now: current)
            return try JSONResponse.make(code)
        }
        return router
    }

    /// Builds the API application listening where the configuration says.
    public static func make(
        queries: CodeQueries,
        configuration: QueryAPIConfiguration,
        now: @escaping @Sendable () -> Instant,
        metrics: (@Sendable () -> [UInt8])? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(queries: queries, now: now, metrics: metrics),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "healthcode-api"
            ),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }
}
