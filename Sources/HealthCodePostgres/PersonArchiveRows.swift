import HealthCodeCore
import PostgresNIO

/// Reads people's archived events back as events (``CloudEvent/archived(subject:source:id:type:time:recordedTime:remainder:)``),
/// for the query API (explanations, replays) and the projector (states folded anew), the same way for both.
enum PersonArchiveRows {
    /// The archived events of `subjects` by subject, then `time`, `id` and `source`; with `cutoff`, only those that can
    /// still matter to evaluations at `cutoff` or later (``Policy/relevanceCutoff(at:)``): all but the
    /// exposures, declarations and journeys (by their arrival) before it, whose bodies are neither sent nor parsed.
    /// With `end`, only those that happened at or before it.
    static func query(
        of subjects: [String],
        relevantFrom cutoff: Instant?,
        through end: Instant? = nil
    ) -> PostgresQuery {
        let from = cutoff?.microsecondsSinceEpoch
        let through = end?.microsecondsSinceEpoch
        return """
            SELECT subject, source, event_id, type, hc_micros(time), hc_micros(recorded_time), body::text
            FROM event_archive
            WHERE subject = ANY(\(subjects)::text[])
              AND (\(from)::int8 IS NULL
                   OR time >= hc_instant(\(from))
                   OR type NOT IN ('hc.exposure.v1', 'hc.declaration.v1', 'hc.travel.v1')
                   OR arrived_at >= hc_instant(\(from)))
              AND (\(through)::int8 IS NULL OR time <= hc_instant(\(through)))
            ORDER BY subject, time, event_id, source
            """
    }

    /// The rows of ``query(of:relevantFrom:)`` put back together, by subject, in the query's order.
    static func events(_ rows: PostgresRowSequence) async throws -> [String: [CloudEvent]] {
        var events: [String: [CloudEvent]] = [:]
        for try await row in rows.decode(Row.self) {
            events[row.0, default: []].append(try event(row))
        }
        return events
    }

    /// An archive row's `subject, source, event_id, type, hc_micros(time), hc_micros(recorded_time), body::text`.
    typealias Row = (String, String, String, String, Int64, Int64?, String)

    /// The event an archive row holds.
    static func event(_ row: Row) throws -> CloudEvent {
        let (subject, source, id, type, time, recorded, remainder) = row
        return try CloudEvent.archived(
            subject: subject,
            source: source,
            id: id,
            type: type,
            time: Instant(microsecondsSinceEpoch: time),
            recordedTime: recorded.map(Instant.init(microsecondsSinceEpoch:)),
            remainder: remainder
        )
    }
}
