import Crypto
import Foundation
import HealthCodeCore
import Logging
import ServiceLifecycle
import Synchronization

/// The registered client platforms, kept in memory and re-read every
/// ``QueryAPIConfiguration/platformRefreshInterval`` (a removal takes effect within it), so a request
/// is authenticated without a database read. A platform proves itself with its API key
/// (`Authorization: Bearer hcpl_…`), of which only the SHA-256 is stored.
public final class ClientPlatformRegistry: Service, Sendable {
    /// The prefix of client platform API keys.
    public static let keyPrefix = "hcpl_"

    private let directory: any ClientPlatformDirectory
    private let refreshInterval: Duration
    private let logger: Logger
    private let byKeyHash = Mutex<[String: ClientPlatformRecord]>([:])

    /// - Parameters:
    ///   - directory: where the platforms are read (`client_platform` in production).
    ///   - refreshInterval: how often they are read again.
    public init(directory: any ClientPlatformDirectory, refreshInterval: Duration, logger: Logger) {
        self.directory = directory
        self.refreshInterval = refreshInterval
        self.logger = logger
    }

    /// A new platform API key: the prefix and 256 random bits in hex.
    public static func generateKey() -> String {
        keyPrefix + SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// The SHA-256 (hex) under which a platform key is stored.
    public static func hash(_ key: some StringProtocol) -> String { AnalystAccess.hash(key) }

    /// Reads the platforms now.
    public func refresh() async throws {
        let platforms = try await directory.clientPlatforms().filter { $0.revokedAt == nil }
        let next = Dictionary(platforms.map { ($0.apiKeySHA256, $0) }, uniquingKeysWith: { first, _ in first })
        byKeyHash.withLock { $0 = next }
    }

    /// Refreshes every interval until shutdown; a failed refresh keeps the platforms read before.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await refresh()
            } catch {
                logger.warning("client platform refresh failed", metadata: ["error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.refreshInterval) }
            } catch {
                return
            }
        }
    }

    /// The active platform whose key is `key`; `nil`: none.
    public func platform(key: some StringProtocol) -> ClientPlatformRecord? {
        guard key.hasPrefix(Self.keyPrefix) else { return nil }
        let hash = Self.hash(key)
        return byKeyHash.withLock { $0[hash] }
    }
}

/// Token buckets per client platform and per person (pseudonym): a platform that asks faster than its
/// rate, or anyone asking about one person faster than the per-person rate, gets 429 with the time
/// until a request would be admitted. Buckets that have refilled are forgotten, so the state stays
/// bounded by the people asked about within a refill period.
public final class RequestThrottle: Sendable {
    /// The state machine; the mutex around it is held only for arithmetic.
    struct State: Sendable {
        /// What to do with a request.
        enum Action: Equatable, Sendable {
            case admit
            /// Refused; `scope` is `platform` or `person`.
            case reject(retryAfter: Duration, scope: String)
        }

        let platformDefault: RequestRateLimit
        let perPerson: RequestRateLimit
        var platforms: [String: TokenBucket] = [:]
        var people: [String: TokenBucket] = [:]
        /// How many person buckets may accumulate before the refilled ones are swept.
        let sweepAbove: Int

        /// Takes one request from the platform's bucket (`limit`: its own, else the default) and then
        /// one from the person's, or says how long until there is one.
        mutating func take(
            platform: String?,
            limit: RequestRateLimit?,
            person: String?,
            now: ContinuousClock.Instant
        ) -> Action {
            if let platform {
                if let wait = Self.take(&platforms, platform, limit: limit ?? platformDefault, now: now) {
                    return .reject(retryAfter: wait, scope: "platform")
                }
            }
            if let person {
                if people.count > sweepAbove { sweep(now: now) }
                if let wait = Self.take(&people, person, limit: perPerson, now: now) {
                    return .reject(retryAfter: wait, scope: "person")
                }
            }
            return .admit
        }

        /// Forgets the person buckets that are full again (equivalent to no bucket).
        mutating func sweep(now: ContinuousClock.Instant) {
            let capacity = Double(max(perPerson.burst, 1))
            let rate = max(perPerson.requestsPerSecond, 1e-6)
            people = people.filter { _, bucket in bucket.level(rate: rate, capacity: capacity, now: now) < capacity }
        }

        /// Takes a token from `key`'s bucket; `nil` if taken, else how long until one exists.
        static func take(
            _ buckets: inout [String: TokenBucket],
            _ key: String,
            limit: RequestRateLimit,
            now: ContinuousClock.Instant
        ) -> Duration? {
            let rate = max(limit.requestsPerSecond, 1e-6)
            let capacity = Double(max(limit.burst, 1))
            var bucket = buckets[key] ?? TokenBucket(capacity: capacity, now: now)
            defer { buckets[key] = bucket }
            return bucket.take(1, rate: rate, capacity: capacity, now: now)
        }
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - platformDefault: the limit of a platform registered without its own.
    ///   - perPerson: the limit of requests about one person, whoever asks.
    public init(platformDefault: RequestRateLimit, perPerson: RequestRateLimit, sweepAbove: Int = 100_000) {
        state = Mutex(State(platformDefault: platformDefault, perPerson: perPerson, sweepAbove: sweepAbove))
    }

    /// Admits a request by `platform` (if any) about `person` (if any), or says when to come back.
    func take(platform: ClientPlatformRecord?, person: String?) -> State.Action {
        state.withLock { $0.take(platform: platform?.id, limit: platform?.rateLimit, person: person, now: .now) }
    }
}
