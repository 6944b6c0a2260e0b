import Crypto
import Foundation
import HealthCodeHTTP

/// An authenticated analyst and the purpose it declared for a read.
public struct AnalystCredential: Sendable, Hashable {
    /// The analyst's id.
    public var analyst: String
    /// The declared purpose (`X-HC-Purpose`), recorded with every read.
    public var purpose: String
}

/// Why an analyst read was refused; never holds the credential.
public struct AccessDenied: Error, Sendable, Hashable, CustomStringConvertible {
    /// `missing-credentials`, `invalid-credentials` or `missing-purpose`.
    public var code: String
    public var reason: String
    public var description: String { "\(code): \(reason)" }
}

/// Analyst authentication (an `hcak_` API key as `Authorization: Bearer`, plus a declared purpose
/// in `X-HC-Purpose`) and the audit trail: every read is appended to `analyst_audit` before any
/// data is returned; a read that cannot be recorded is not served.
public struct AnalystAccess: Sendable {
    /// The prefix of analyst API keys.
    public static let keyPrefix = "hcak_"
    /// Longest accepted purpose.
    public static let maximumPurposeLength = 200

    private let directory: any AnalystDirectory

    /// - Parameter directory: the registered analysts (`analyst_credential`) and the audit trail
    ///   (`analyst_audit`) in production.
    public init(directory: any AnalystDirectory) {
        self.directory = directory
    }

    /// A new analyst API key.
    public static func generateKey() -> String {
        keyPrefix + SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// The SHA-256 (hex) under which an analyst key is stored.
    public static func hash(_ key: some StringProtocol) -> String {
        SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The analyst proven by the headers, with its declared purpose.
    public func authenticate(
        authorization: String?,
        purpose: String?
    ) async throws -> Result<AnalystCredential, AccessDenied> {
        guard let key = Bearer.credential(in: authorization) else {
            return .failure(
                AccessDenied(code: "missing-credentials", reason: "send 'Authorization: Bearer' with an analyst key")
            )
        }
        guard key.hasPrefix(Self.keyPrefix), let id = try await directory.analystID(apiKeySHA256: Self.hash(key)) else {
            return .failure(AccessDenied(code: "invalid-credentials", reason: "the analyst key is unknown or revoked"))
        }
        let purpose = purpose?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !purpose.isEmpty, purpose.count <= Self.maximumPurposeLength else {
            return .failure(
                AccessDenied(
                    code: "missing-purpose",
                    reason: "declare the purpose of the read in X-HC-Purpose (1 to 200 characters)"
                )
            )
        }
        return .success(AnalystCredential(analyst: id, purpose: purpose))
    }

    /// Records a read; throws if it could not be recorded (the read must then not be served).
    public func recordRead(by credential: AnalystCredential, subject: String, endpoint: String) async throws {
        try await directory.recordRead(
            by: .analyst(credential.analyst),
            purpose: credential.purpose,
            subject: subject,
            endpoint: endpoint
        )
    }

    /// Records a read by a checkpoint platform; throws if it could not be recorded.
    public func recordRead(
        byPlatform platform: String,
        purpose: String,
        subject: String,
        endpoint: String
    )
        async throws
    {
        try await directory.recordRead(by: .platform(platform), purpose: purpose, subject: subject, endpoint: endpoint)
    }

    /// The declared purpose of a read (`X-HC-Purpose`), trimmed; `nil` if absent, empty or too long.
    public static func purpose(_ header: String?) -> String? {
        let purpose = header?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !purpose.isEmpty, purpose.count <= maximumPurposeLength else { return nil }
        return purpose
    }
}
