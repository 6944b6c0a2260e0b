import HealthCodeCore
import Logging
import ServiceLifecycle

/// Appends approved designations to the event log, exactly once in effect, as ``HeldReviewRelease`` does for
/// overrides: the approval is stored first (`healthcode approvals approve`), then the event is appended, then
/// marked published. One whose append failed, or whose process stopped in between, is appended by the next
/// approval or by any gateway within ``GatewayConfiguration/heldReviewInterval``; appending one twice is
/// harmless (the projector applies an event id once).
public final class HeldDesignationRelease: Service, Sendable {
    private let designations: any HeldDesignations
    private let log: any EventLog
    private let interval: Duration
    private let logger: Logger

    public init(designations: any HeldDesignations, log: any EventLog, interval: Duration, logger: Logger) {
        self.designations = designations
        self.log = log
        self.interval = interval
        self.logger = logger
    }

    /// Appends every approved designation not yet in the log; how many were appended and how many failed.
    public func publishApproved() async throws -> (published: Int, failed: Int) {
        let approved = try await designations.unpublishedApprovals()
        guard !approved.isEmpty else { return (0, 0) }
        var records: [EventRecord] = []
        var ids: [Int64] = []
        var failed = 0
        for (id, bytes) in approved {
            do {
                let event = try EventDecoder.decode(bytes)
                records.append(EventRecord(key: event.subject, value: event.jsonBytes()))
                ids.append(id)
            } catch {
                // Held designations were valid when held; one that no longer decodes is left for an operator.
                logger.error("held designation unreadable; not appended", metadata: ["held": "\(id)"])
                failed += 1
            }
        }
        var appended: [Int64] = []
        for (id, position) in zip(ids, await log.append(records)) {
            if case .success = position { appended.append(id) } else { failed += 1 }
        }
        try await designations.markPublished(appended)
        return (appended.count, failed)
    }

    /// Until shutdown, every interval: appends approved designations. A failed round is logged and tried again.
    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let outcome = try await publishApproved()
                if outcome.failed > 0 {
                    logger.warning(
                        "approved designations not appended; tried again",
                        metadata: ["failed": "\(outcome.failed)"]
                    )
                }
            } catch {
                logger.warning("held designations not released this time", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}
