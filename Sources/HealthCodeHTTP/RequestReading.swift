import Hummingbird
import HummingbirdCore
import NIOCore

/// How long a client may take over a request, shared by the gateway and the query API, so that a slow or
/// silent client cannot hold a connection, or one of the gateway's bounded request slots, for ever.
///
/// Two bounds cover every way of being slow: a connection that sends nothing for ``idleTimeout`` (no
/// complete request head, no body part) is closed by the server, and a body still arriving
/// ``bodyReadTimeout`` after the handler began reading it is refused with 408 and its connection closed.
/// A client trickling one byte at a time therefore holds a slot for at most the sum of the two.
public struct HTTPTimeouts: Sendable, Equatable {
    /// A connection silent for this long is closed: between requests, or while its request head or body
    /// is being sent. Default 30 s.
    public var idleTimeout: Duration = .seconds(30)
    /// Longest time to receive a request body once its handler starts reading it. Default 30 s: a 4 MiB
    /// batch needs about 1.1 Mbit/s.
    public var bodyReadTimeout: Duration = .seconds(30)

    /// The defaults.
    public init() {}

    /// The checks of these settings, in the form of `ConfigurationError.check`, for the owning
    /// configuration's `validate()`.
    public var checks: [(holds: Bool, setting: String, requirement: String)] {
        [
            (idleTimeout > .zero, "timeouts.idleTimeout", "must be more than 0"),
            (bodyReadTimeout > .zero, "timeouts.bodyReadTimeout", "must be more than 0"),
        ]
    }

    /// The HTTP/1.1 server with the idle timeout.
    public var server: HTTPServerBuilder {
        let components = idleTimeout.components
        let nanoseconds = components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
        return .http1(configuration: .init(idleTimeout: .nanoseconds(nanoseconds)))
    }
}

/// Why a request body was not read whole.
public enum BodyRefusal: Error, Sendable, Equatable {
    /// The body is larger than the limit; reading stopped at the first part beyond it.
    case tooLarge(limit: Int)
    /// The body was still arriving when the read timeout passed.
    case tooSlow(timeout: Duration)

    /// The 413 or 408 answer. Both close the connection: the rest of the body was not consumed.
    public var response: Response {
        switch self {
        case .tooLarge(let limit):
            JSONResponse.problem(
                status: .contentTooLarge,
                code: "body-too-large",
                detail: "the request body exceeds \(limit) bytes; send smaller requests",
                headers: [.connection: "close"]
            )
        case .tooSlow(let timeout):
            JSONResponse.problem(
                status: .requestTimeout,
                code: "body-too-slow",
                detail: "the request body took longer than \(timeout.components.seconds) s to arrive",
                headers: [.connection: "close"]
            )
        }
    }
}

extension RequestBody {
    /// Reads the body, stopping as soon as it exceeds `limit` bytes or has taken longer than `timeout`. The
    /// time is checked as each part arrives, which costs no timer; a body whose parts stop arriving
    /// altogether is ended by the server's idle timeout (``HTTPTimeouts/idleTimeout``). A connection that
    /// fails while the body arrives throws.
    public func read(upTo limit: Int, within timeout: Duration) async throws -> Result<ByteBuffer, BodyRefusal> {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var collected = ByteBuffer()
        for try await part in self {
            guard collected.readableBytes + part.readableBytes <= limit else {
                return .failure(.tooLarge(limit: limit))
            }
            guard ContinuousClock.now <= deadline else { return .failure(.tooSlow(timeout: timeout)) }
            var part = part
            collected.writeBuffer(&part)
        }
        return .success(collected)
    }
}
