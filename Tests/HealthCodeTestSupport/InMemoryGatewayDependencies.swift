import HealthCodeCore
import HealthCodeGateway

/// A ``PublisherDirectory`` that answers what `records` returns, for gateway tests without PostgreSQL.
public struct InMemoryPublisherDirectory: PublisherDirectory {
    private let records: @Sendable () throws -> [PublisherRecord]

    public init(_ records: @escaping @Sendable () throws -> [PublisherRecord]) { self.records = records }

    public func publishers() async throws -> [PublisherRecord] { try records() }
}

/// ``RetractionTargets`` answered by `lookup` (no archive: every retraction allowed), for gateway tests.
public struct InMemoryRetractionTargets: RetractionTargets {
    /// The sources of archived events with an id and a subject (the last argument: an area code).
    public typealias Lookup = @Sendable (String, String, Bool) async throws -> Set<String>
    private let lookup: Lookup

    public init(_ lookup: @escaping Lookup = { _, _, _ in [] }) { self.lookup = lookup }

    public func sources(ofEvent eventID: String, subject: String, isArea: Bool) async throws -> Set<String> {
        try await lookup(eventID, subject, isArea)
    }
}
