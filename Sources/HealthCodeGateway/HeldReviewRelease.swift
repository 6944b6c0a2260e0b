import HealthCodeCore
import Logging
import Metrics
import ServiceLifecycle

/// `hc_review_overrides_total{office,officer,status}` (status `applied`, `held`, `approved`, `rejected`)
/// and the gauge `hc_review_held_overrides` (overrides waiting for a second officer, in all offices).
enum ReviewMetrics {
    static let held = Gauge(label: "hc_review_held_overrides")

    static func count(office: String, officer: String, status: String, by amount: Int = 1) {
        Counter(
            label: "hc_review_overrides_total",
            dimensions: [("office", office), ("officer", officer), ("status", status)]
        ).increment(by: amount)
    }
}

/// Appends approved overrides to the event log, exactly once in effect: a second officer's approval is
/// stored first (``ReviewOffices``), then the event is appended with the approval (``HeldReview/approvedEvent()``),
/// then it is marked published. An approval whose append failed, or whose process stopped in between,
/// stays unpublished and is appended by the next approval or by any gateway within
/// ``GatewayConfiguration/heldReviewInterval``; appending one twice is harmless (the projector applies
/// an event id once).
///
/// As a service (one per gateway) it also keeps the held-override gauge current and counts the
/// decisions made since it started (`hc_review_overrides_total{status="approved"|"rejected"}`; every
/// gateway counts every decision, so aggregate those with `max` across instances, not `sum`).
public final class HeldReviewRelease: Service, Sendable {
    private let offices: any ReviewOffices
    private let log: any EventLog
    private let interval: Duration
    private let logger: Logger

    public init(offices: any ReviewOffices, log: any EventLog, interval: Duration, logger: Logger) {
        self.offices = offices
        self.log = log
        self.interval = interval
        self.logger = logger
    }

    /// What one release achieved.
    public struct Outcome: Sendable, Hashable {
        /// Approved overrides appended to the log and marked published.
        public var published: Int
        /// Approved overrides the log did not take; they stay approved and unpublished.
        public var failed: Int
    }

    /// Appends every approved override not yet in the log, then marks the appended ones published.
    public func publishApproved() async throws -> Outcome {
        var outcome = Outcome(published: 0, failed: 0)
        while true {
            let approved = try await offices.unpublishedApprovals()
            guard !approved.isEmpty else { return outcome }
            var records: [EventRecord] = []
            var ids: [Int64] = []
            for review in approved {
                do {
                    let event = try review.approvedEvent()
                    records.append(EventRecord(key: event.subject, value: event.jsonBytes()))
                    ids.append(review.id)
                } catch {
                    // Held events were valid when held; one that no longer decodes is left for an operator.
                    logger.error("held override unreadable; not appended", metadata: ["held": "\(review.id)"])
                    outcome.failed += 1
                }
            }
            var appended: [Int64] = []
            for (id, position) in zip(ids, await log.append(records)) {
                if case .success = position { appended.append(id) } else { outcome.failed += 1 }
            }
            try await offices.markPublished(appended)
            outcome.published += appended.count
            guard appended.count == approved.count else {
                logger.warning(
                    "approved overrides not appended; they are appended again later",
                    metadata: ["failed": "\(outcome.failed)"]
                )
                return outcome
            }
        }
    }

    /// Until shutdown, every interval: appends approved overrides, refreshes the gauge, counts new
    /// decisions and forgets old quota counts. A failed step is logged and tried again next time.
    public func run() async throws {
        var lastDecision: Int64?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                _ = try await publishApproved()
                let held = try await offices.heldCount()
                ReviewMetrics.held.record(held)
                if let seen = lastDecision {
                    let decisions = try await offices.decisions(after: seen)
                    for decision in decisions {
                        ReviewMetrics.count(
                            office: decision.office,
                            officer: decision.officer,
                            status: decision.approved ? "approved" : "rejected"
                        )
                    }
                    lastDecision = decisions.last?.id ?? seen
                } else {
                    lastDecision = try await offices.latestDecisionID()
                }
                try await offices.forgetOldCounts()
            } catch {
                logger.warning("held overrides not released this time", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}
