import AsyncHTTPClient
import Foundation
import HealthCodeCore
import JWTKit
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Where an issuer's JWKS document is read from: an `https://` URL, a file, or `http://` to this
/// machine only (a loopback address: no network in between). Plain `http://` to anywhere else is
/// refused: whoever sits on the path could substitute the keys.
public enum JWKSLocation: Sendable, Hashable, CustomStringConvertible {
    case https(String)
    case loopbackHTTP(String)
    case file(String)

    /// Largest JWKS document read.
    public static let maximumBytes = 1 << 20

    /// Parses a location; throws ``ConfigurationError`` (setting `trustedIssuers`) for plain http
    /// to another machine or an unusable URL.
    public init(_ text: String) throws(ConfigurationError) {
        let lowered = text.lowercased()
        if lowered.hasPrefix("https://") {
            guard URL(string: text)?.host != nil else { throw Self.refused("\(text) is not a URL") }
            self = .https(text)
        } else if lowered.hasPrefix("http://") {
            guard let host = URL(string: text)?.host, ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
                throw Self.refused("key sets are read over https or from files; plain http only from this machine")
            }
            self = .loopbackHTTP(text)
        } else if lowered.contains("://") {
            throw Self.refused("key sets are read over https or from files")
        } else {
            guard !text.isEmpty else { throw Self.refused("a location must not be empty") }
            self = .file(text)
        }
    }

    static func refused(_ requirement: String) -> ConfigurationError {
        ConfigurationError(component: "query API", setting: "trustedIssuers", requirement: requirement)
    }

    public var description: String {
        switch self {
        case .https(let url), .loopbackHTTP(let url): url
        case .file(let path): path
        }
    }

    /// Reads the document (at most ``maximumBytes``), within `timeout` for a URL.
    public func load(timeout: Duration = .seconds(10)) async throws -> String {
        switch self {
        case .https(let url), .loopbackHTTP(let url):
            let seconds = Int64(timeout.components.seconds) + (timeout.components.attoseconds > 0 ? 1 : 0)
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: url),
                timeout: .seconds(max(seconds, 1))
            )
            guard response.status == .ok else { throw SignedCodeRejection(code: "keys-unavailable") }
            return String(buffer: try await response.body.collect(upTo: Self.maximumBytes))
        case .file(let path):
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            let data = try handle.read(upToCount: Self.maximumBytes + 1) ?? Data()
            guard data.count <= Self.maximumBytes else { throw SignedCodeRejection(code: "keys-too-large") }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Reads a trust file, `{"<issuer>": "<JWKS https URL or file>", …}`; every location is checked
    /// (none is fetched).
    public static func trustFile(_ path: String) throws -> [String: JWKSLocation] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let locations = try JSONDecoder().decode([String: String].self, from: data)
        var parsed: [String: JWKSLocation] = [:]
        for (issuer, location) in locations { parsed[issuer] = try JWKSLocation(location) }
        return parsed
    }
}

/// The key sets of the trusted issuers, replaced as they are (re)fetched: an issuer listed but never
/// fetched is known and answers `keys-unavailable`; one not listed is `untrusted-issuer`.
public final class TrustedKeySets: Sendable {
    struct KeySet: Sendable {
        var keys: JWTKeyCollection
        /// The published key ids: a token naming another key (revoked, or never published) is refused.
        var kids: Set<String>
    }

    enum Lookup: Sendable {
        case untrusted
        case unavailable
        case available(KeySet)
    }

    private let sets: Mutex<[String: KeySet?]>

    /// - Parameter issuers: the trusted issuers, none of whose keys is known yet.
    public init(issuers: some Sequence<String>) {
        sets = Mutex(Dictionary(issuers.map { ($0, KeySet?.none) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Installs `jwks` (a JWKS document) as `issuer`'s keys, trusting the issuer if it was not yet.
    public func install(jwks: String, for issuer: String) async throws {
        let document = try JSONDecoder().decode(JWKS.self, from: Data(jwks.utf8))
        let set = KeySet(
            keys: try await JWTKeyCollection().add(jwks: document),
            kids: Set(document.keys.compactMap { $0.keyIdentifier?.string })
        )
        sets.withLock { $0[issuer] = KeySet?.some(set) }
    }

    /// Whether `issuer`'s keys have been fetched.
    public func isAvailable(_ issuer: String) -> Bool {
        sets.withLock { $0[issuer].map { $0 != nil } ?? false }
    }

    func lookup(_ issuer: String) -> Lookup {
        sets.withLock { sets in
            guard let entry = sets[issuer] else { return .untrusted }
            return entry.map { Lookup.available($0) } ?? Lookup.unavailable
        }
    }
}

/// Fetches the trusted issuers' key sets at start and every ``interval``, each region on its own:
/// one that does not answer neither blocks start-up nor the others, keeps its last keys (or none:
/// its codes answer `keys-unavailable`) and is asked again after ``retryDelay``.
public struct TrustedKeyRefresher: Service {
    let locations: [String: JWKSLocation]
    let keySets: TrustedKeySets
    let interval: Duration
    let retryDelay: Duration
    let fetchTimeout: Duration
    let logger: Logger

    public init(
        locations: [String: JWKSLocation],
        keySets: TrustedKeySets,
        interval: Duration,
        retryDelay: Duration,
        fetchTimeout: Duration,
        logger: Logger
    ) {
        self.locations = locations
        self.keySets = keySets
        self.interval = interval
        self.retryDelay = retryDelay
        self.fetchTimeout = fetchTimeout
        self.logger = logger
    }

    /// Fetches every region's keys concurrently; returns the issuers that failed.
    @discardableResult
    public func refreshAll() async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for (issuer, location) in locations {
                group.addTask {
                    do {
                        try await keySets.install(jwks: try await location.load(timeout: fetchTimeout), for: issuer)
                        return nil
                    } catch {
                        logger.warning(
                            "trusted issuer's keys not fetched; its codes answer keys-unavailable until they are",
                            metadata: [
                                "issuer": "\(issuer)", "location": "\(location)",
                                "error": "\(String(describing: type(of: error)))",
                            ]
                        )
                        return issuer
                    }
                }
            }
            var failed: [String] = []
            for await issuer in group { if let issuer { failed.append(issuer) } }
            return failed.sorted()
        }
    }

    /// Refreshes until shutdown: every ``interval``, or after ``retryDelay`` while some region failed.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let failed = await refreshAll()
            let delay = failed.isEmpty ? interval : min(interval, retryDelay)
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
            } catch {
                return
            }
        }
    }
}
