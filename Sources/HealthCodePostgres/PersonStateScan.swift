import HealthCodeCore
import Logging
import PostgresNIO

/// Reads every person's folded state, a range of pseudonyms at a time, for work over the whole population
/// (`healthcode impact`). Each range is one streamed query on the primary key, so that several ranges read
/// and evaluate at once, one per core.
public struct PersonStateScan: Sendable {
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// How many people have a state.
    public func people() async throws -> Int {
        let rows = try await client.query("SELECT count(*) FROM person_state", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Pseudonyms that split the people into `parts` ranges of about the same size (fewer when there are
    /// few people), from a sample of about 20,000 rows: `parts - 1` ascending bounds, so that each range is one
    /// worker's share whatever the subjects look like.
    public func bounds(parts: Int, people: Int) async throws -> [String] {
        guard parts > 1, people > 1 else { return [] }
        let percent = min(100, 100 * 20_000 / Double(people))
        let rows = try await client.query(
            PostgresQuery(
                unsafeSQL: "SELECT subject FROM person_state TABLESAMPLE SYSTEM (\(percent)) ORDER BY subject"
            ),
            logger: logger
        )
        var sample: [String] = []
        for try await subject in rows.decode(String.self) { sample.append(subject) }
        guard sample.count >= parts else { return [] }
        var bounds: [String] = []
        for part in 1..<parts {
            let bound = sample[sample.count * part / parts]
            if bounds.last != bound { bounds.append(bound) }
        }
        return bounds
    }

    /// Hands each state of the people whose pseudonyms are in `range` (byte-wise, `upperBound` nil: no end)
    /// to `body`, in pseudonym order, as rows arrive.
    /// - Throws: ``PersonStateScanError`` naming the person when a state does not decode.
    public func states(
        from lowerBound: String,
        below upperBound: String?,
        _ body: (String, PersonState) async throws -> Void
    ) async throws {
        let rows = try await client.query(
            """
            SELECT subject, state::text FROM person_state
            WHERE subject >= \(lowerBound) AND (\(upperBound)::text IS NULL OR subject < \(upperBound))
            ORDER BY subject
            """,
            logger: logger
        )
        for try await (subject, json) in rows.decode((String, ByteBuffer).self) {
            try await body(subject, try Self.state(json, of: subject))
        }
    }

    /// Hands each state of the people present where and when `job` says (``AreaReevaluation/init(affectedBy:)``)
    /// to `body`, in pseudonym order, as rows arrive; `body` returns `false` to stop.
    public func states(
        presentFor job: AreaReevaluation,
        _ body: (String, PersonState) async throws -> Bool
    ) async throws {
        let start = job.windowStart?.microsecondsSinceEpoch ?? Int64.min
        let end = job.windowEnd?.microsecondsSinceEpoch ?? Int64.min
        let rows = try await client.query(
            """
            SELECT s.subject, s.state::text FROM person_state s
            WHERE s.subject IN (
                SELECT subject FROM person_presence
                WHERE area_code BETWEEN \(job.areas.lowerBound) AND \(job.areas.upperBound)
                  AND (hc_instant(\(start)) IS NULL OR at >= hc_instant(\(start)))
                  AND (hc_instant(\(end)) IS NULL OR at < hc_instant(\(end))))
            ORDER BY s.subject
            """,
            logger: logger
        )
        for try await (subject, json) in rows.decode((String, ByteBuffer).self) {
            guard try await body(subject, try Self.state(json, of: subject)) else { return }
        }
    }

    private static func state(_ json: ByteBuffer, of subject: String) throws -> PersonState {
        do {
            return try PersonState(storedJSON: json.readableBytesView)
        } catch {
            throw PersonStateScanError(subject: subject, reason: error.description)
        }
    }

    /// The archived events of `subjects` that can matter to evaluations at `cutoff` or later, by subject, to
    /// fold states anew that were pruned for other rules.
    public func relevantEvents(of subjects: [String], from cutoff: Instant) async throws -> [String: [CloudEvent]] {
        try await PersonArchiveRows.events(
            client.query(PersonArchiveRows.query(of: subjects, relevantFrom: cutoff), logger: logger)
        )
    }
}

/// A stored state that does not decode: whose (a pseudonym) and why.
public struct PersonStateScanError: Error, Sendable, CustomStringConvertible {
    public var subject: String
    public var reason: String
    public var description: String { "the stored state of \(subject) is unreadable: \(reason)" }
}
