import Logging
import Synchronization

/// Where archived area events are read, in the order they were archived: `area_event_archive` in
/// production (the PostgreSQL adapter's store, or one of its transactions).
public protocol AreaEventArchive: Sendable {
    /// Area events archived after `sequence`, in order, as their canonical JSON.
    func areaEvents(after sequence: Int64) async throws -> [(sequence: Int64, body: String)]
}

/// An in-memory ``RiskAreaMap`` of every archived designation, refreshed incrementally from an
/// ``AreaEventArchive`` (only rows after the last sequence number seen are read).
///
/// Designations are few (thousands) and read by every evaluation, so each process keeps all of them.
public final class RiskAreaCatalog: Sendable {
    private struct State {
        var map = RiskAreaMap()
        var lastSequence: Int64 = 0
        var lastRefresh: ContinuousClock.Instant?
    }

    private let archive: any AreaEventArchive
    private let logger: Logger
    private let state = Mutex(State())

    public init(archive: any AreaEventArchive, logger: Logger) {
        self.archive = archive
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
        try await refresh(from: archive)
    }

    /// Like ``refresh()``, but reads from `source`: a transaction that holds a pooled connection reads
    /// on it rather than wait for a second one (with every connection held by such transactions, none
    /// would ever come).
    @discardableResult
    public func refresh(from source: any AreaEventArchive) async throws -> RiskAreaMap {
        let started = ContinuousClock.now
        let after = state.withLock { $0.lastSequence }
        let rows = try await source.areaEvents(after: after)
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
