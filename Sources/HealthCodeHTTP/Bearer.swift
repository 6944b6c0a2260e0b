import Foundation

/// The credential of an `Authorization: Bearer …` header (RFC 6750; the scheme is case-insensitive),
/// read the same way by the gateway (publishers) and the query API (platforms, analysts).
public enum Bearer {
    /// The credential, without surrounding whitespace; `nil` when the header is absent or not `Bearer`.
    public static func credential(in authorization: String?) -> String? {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return nil }
        return authorization.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
    }
}

extension Duration {
    /// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
    public var retryAfterSeconds: Int { max(1, Int((self / .seconds(1)).rounded(.up))) }
}
