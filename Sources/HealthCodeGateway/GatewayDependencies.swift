import HealthCodeCore

/// Where the gateway reads the registered publishers: table `publisher` in production
/// (`PublisherStore`), a fixed list in tests.
public protocol PublisherDirectory: Sendable {
    /// Every registered publisher, revoked ones included.
    func publishers() async throws -> [PublisherRecord]
}

/// What a retraction may refer to: the event archive in production (`PublisherStore`), a fixed
/// answer in tests.
public protocol RetractionTargets: Sendable {
    /// The sources of archived events of `subject` (a pseudonym, or an area code when `isArea`) whose
    /// id is `eventID`.
    func sources(ofEvent eventID: String, subject: String, isArea: Bool) async throws -> Set<String>
}
