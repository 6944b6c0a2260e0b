import HealthCodeCore
import Logging
import PostgresNIO

// The queue of area re-evaluations (table `area_reevaluations`): designations enqueue a job, the
// re-evaluator claims it and works through the people present in its areas, chunk by chunk.
extension PostgresProjectionTransaction {
    /// Queues the re-evaluation of everybody present in `job`'s areas during its window.
    public func enqueue(_ job: AreaReevaluation) async throws {
        let start = job.windowStart?.microsecondsSinceEpoch ?? Int64.min
        let end = job.windowEnd?.microsecondsSinceEpoch ?? Int64.min
        try await connection.query(
            """
            INSERT INTO area_reevaluations (area_low, area_high, window_start, window_end, trigger_source, trigger_id)
            VALUES (\(job.areas.lowerBound), \(job.areas.upperBound), hc_instant(\(start)), hc_instant(\(end)),
                    \(job.trigger.source), \(job.trigger.id))
            """,
            logger: logger
        )
    }

    /// Takes the oldest queued area re-evaluation that no other projector is working on.
    public func claimAreaReevaluation() async throws -> AreaReevaluation? {
        let rows = try await connection.query(
            """
            SELECT job_id, area_low, area_high, hc_micros(window_start), hc_micros(window_end), trigger_source,
                   trigger_id, next_subject
            FROM area_reevaluations ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED
            """,
            logger: logger
        )
        for try await (id, low, high, start, end, source, eventID, next) in rows.decode(
            (Int64, Int32, Int32, Int64?, Int64?, String, String, String).self
        ) {
            return AreaReevaluation(
                id: id,
                areas: low...high,
                windowStart: start.map(Instant.init(microsecondsSinceEpoch:)),
                windowEnd: end.map(Instant.init(microsecondsSinceEpoch:)),
                trigger: EventReference(source: source, id: eventID),
                nextSubject: next
            )
        }
        return nil
    }

    /// The next `limit` people (by pseudonym, after `job.nextSubject`) present in the job's areas
    /// during its window.
    public func people(presentFor job: AreaReevaluation, limit: Int) async throws -> [String] {
        let start = job.windowStart?.microsecondsSinceEpoch ?? Int64.min
        let end = job.windowEnd?.microsecondsSinceEpoch ?? Int64.min
        let rows = try await connection.query(
            """
            SELECT DISTINCT subject FROM person_presence
            WHERE area_code BETWEEN \(job.areas.lowerBound) AND \(job.areas.upperBound)
              AND (hc_instant(\(start)) IS NULL OR at >= hc_instant(\(start)))
              AND (hc_instant(\(end)) IS NULL OR at < hc_instant(\(end)))
              AND subject > \(job.nextSubject)
            ORDER BY subject LIMIT \(Int64(limit))
            """,
            logger: logger
        )
        var subjects: [String] = []
        for try await subject in rows.decode(String.self) { subjects.append(subject) }
        return subjects
    }

    /// Records progress on a job, or removes it when `finished`.
    public func advance(_ job: AreaReevaluation, to nextSubject: String, finished: Bool) async throws {
        if finished {
            try await connection.query("DELETE FROM area_reevaluations WHERE job_id = \(job.id)", logger: logger)
        } else {
            try await connection.query(
                "UPDATE area_reevaluations SET next_subject = \(nextSubject) WHERE job_id = \(job.id)",
                logger: logger
            )
        }
    }
}
