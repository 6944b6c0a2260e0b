import HealthCodeCore
import Logging
import Synchronization

/// An in-memory ``RiskAreaMap`` of every archived designation, refreshed incrementally from
/// `area_event_archive` (only rows after the last sequence number seen are read).
///
/// Designations are few (thousands) and read by every evaluation, so each process keeps all of them.
public final class RiskAreaCatalog: Sendable {
    private struct State {
        var map = RiskAreaMap()
        var lastSequence: Int64 = 0
        var lastRefresh: ContinuousClock.Instant?
    }

    private let store: ProjectionStore
    private let logger: Logger
    private let state = Mutex(State())

    public init(store: ProjectionStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// The designations as last refreshed.
    public var current: RiskAreaMap { state.withLock { $0.map } }

    /// The designations, re-read first if the last refresh is older than `maximumAge`.
    public func designations(maximumAge: Duration) async throws -> RiskAreaMap {
        let now = ContinuousClock.now
        let stale = state.withLock { state in
            guard let last = state.lastRefresh, last.duration(to: now) < maximumAge else { return true }
            return false
        }
        return stale ? try await refresh() : current
    }

    /// Reads area events archived since the last refresh and returns the updated map.
    @discardableResult
    public func refresh() async throws -> RiskAreaMap {
        try await refresh { try await store.areaEvents(after: $0) }
    }

    /// Like ``refresh()``, but reads on the connection of `transaction`: a transaction that holds a
    /// pooled connection must not wait for a second one (with every connection held by such
    /// transactions, none would ever come).
    @discardableResult
    public func refresh(in transaction: ProjectionTransaction) async throws -> RiskAreaMap {
        try await refresh { try await transaction.areaEvents(after: $0) }
    }

    private func refresh(
        reading read: (Int64) async throws -> [(sequence: Int64, body: String)]
    ) async throws -> RiskAreaMap {
        let started = ContinuousClock.now
        let after = state.withLock { $0.lastSequence }
        let rows = try await read(after)
        guard !rows.isEmpty else {
            return state.withLock { state in
                state.lastRefresh = started
                return state.map
            }
        }
        var decoded: [(Int64, CloudEvent)] = []
        decoded.reserveCapacity(rows.count)
        for row in rows {
            do {
                decoded.append((row.sequence, try EventDecoder.decode(Array(row.body.utf8))))
            } catch {
                // Archived rows were validated before archiving; a failure here means the contract changed.
                logger.error(
                    "archived area event no longer decodes",
                    metadata: ["sequence": "\(row.sequence)", "error": "\(error)"]
                )
            }
        }
        return state.withLock { state in
            state.lastRefresh = started
            for (sequence, event) in decoded where sequence > state.lastSequence {
                state.map.apply(event)
                state.lastSequence = sequence
            }
            if let last = rows.last, last.sequence > state.lastSequence { state.lastSequence = last.sequence }
            return state.map
        }
    }
}
