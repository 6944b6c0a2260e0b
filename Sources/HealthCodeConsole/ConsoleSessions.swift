import Crypto
import Foundation
import HealthCodeAPI
import HealthCodeCore
import Synchronization

/// A signed-in analyst: who, for which declared purpose, and what they may do. The browser holds only the
/// session's token (an `HttpOnly`, `SameSite=Strict` cookie); the analyst's key never leaves the sign-in form.
public struct ConsoleSession: Sendable, Hashable {
    /// The analyst as the sign-in authenticated it, with the purpose declared then: recorded with every read
    /// (as `X-HC-Purpose` through the API).
    public var credential: AnalystCredential
    public var analyst: String { credential.analyst }
    public var purpose: String { credential.purpose }
    /// Whether the analyst may approve or reject held changes.
    public var mayApprove: Bool
    /// The token forms must carry back (cross-site request forgery).
    public var formToken: String
    public var signedInAt: Instant
    public var lastSeen: Instant
}

/// The console's sessions: a state machine behind a lock. Tokens are 256 random bits; only their SHA-256 is
/// kept, so a memory dump does not hand out sessions. A session ends at sign-out, after
/// ``ConsoleConfiguration/sessionIdleTimeout`` without a request, or ``ConsoleConfiguration/sessionLifetime``
/// after sign-in; past ``ConsoleConfiguration/maximumSessions`` the least recently seen is ended. Sessions live
/// in the process that signed the analyst in: behind several API instances, route a browser to one of them
/// (sticky sessions), or it signs in again on another.
public final class ConsoleSessions: Sendable {
    struct State: Sendable {
        var sessions: [String: ConsoleSession] = [:]
        let idleTimeout: Int64
        let lifetime: Int64
        let maximum: Int

        /// What a lookup found.
        enum Lookup: Equatable {
            case active(ConsoleSession)
            case expired
            case unknown
        }

        mutating func add(_ session: ConsoleSession, key: String) {
            if sessions.count >= maximum {
                let oldest = sessions.min { $0.value.lastSeen < $1.value.lastSeen }
                if let oldest { sessions[oldest.key] = nil }
            }
            sessions[key] = session
        }

        mutating func touch(_ key: String, now: Instant) -> Lookup {
            guard var session = sessions[key] else { return .unknown }
            let micros = now.microsecondsSinceEpoch
            guard micros - session.lastSeen.microsecondsSinceEpoch <= idleTimeout,
                micros - session.signedInAt.microsecondsSinceEpoch <= lifetime
            else {
                sessions[key] = nil
                return .expired
            }
            session.lastSeen = now
            sessions[key] = session
            return .active(session)
        }

        mutating func remove(_ key: String) -> Bool {
            sessions.removeValue(forKey: key) != nil
        }
    }

    private let state: Mutex<State>

    public init(configuration: ConsoleConfiguration) {
        state = Mutex(
            State(
                idleTimeout: configuration.sessionIdleTimeout.microseconds,
                lifetime: configuration.sessionLifetime.microseconds,
                maximum: configuration.maximumSessions
            )
        )
    }

    /// Starts a session; returns its token (for the cookie only).
    public func signIn(_ credential: AnalystCredential, mayApprove: Bool, now: Instant) -> (String, ConsoleSession) {
        let token = Self.randomToken()
        let session = ConsoleSession(
            credential: credential,
            mayApprove: mayApprove,
            formToken: Self.randomToken(),
            signedInAt: now,
            lastSeen: now
        )
        state.withLock { $0.add(session, key: Self.key(token)) }
        return (token, session)
    }

    /// The session of `token`, seen now; `nil` if it never was, ended or expired.
    public func session(token: String, now: Instant) -> ConsoleSession? {
        guard token.utf8.count == 64 else { return nil }
        if case .active(let session) = state.withLock({ $0.touch(Self.key(token), now: now) }) { return session }
        return nil
    }

    /// Ends the session of `token`; whether there was one.
    @discardableResult
    public func signOut(token: String) -> Bool {
        state.withLock { $0.remove(Self.key(token)) }
    }

    /// Sessions held now (expired ones count until they are next looked up or pushed out).
    public var count: Int { state.withLock { $0.sessions.count } }

    static func randomToken() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    static func key(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

extension Duration {
    var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
