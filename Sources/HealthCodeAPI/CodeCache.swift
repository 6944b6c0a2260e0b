import HealthCodeCore
import Metrics
import Synchronization

/// The materialised codes a query API has read recently, kept in memory so that a repeated lookup
/// of the same person costs no PostgreSQL round trip.
///
/// Code checks outnumber code changes by orders of magnitude, and a round trip to PostgreSQL is most
/// of what an uncached lookup costs. A kept code is dropped as soon as the projector's transaction
/// that changes it commits: the transaction announces the change and a listener (PostgreSQL's
/// `LISTEN`, in the adapter) hears it and tells this cache (``CodeChangeObserver``). Without a live listener nothing is kept or answered from memory,
/// and when the listener loses its connection everything kept is dropped, since announcements may
/// have been missed meanwhile. `maximumAge` bounds what a change that went unannounced (an UPDATE by
/// hand, a listener cut off without noticing) can leave behind.
public final class CodeCache: CodeChangeObserver, Sendable {
    private let state: Mutex<CodeCacheState>
    private let reads: any MaterialisedCodeReads
    private let hits = Counter(label: "hc_api_code_cache_hits_total")
    private let misses = Counter(label: "hc_api_code_cache_misses_total")
    private let invalidations = Counter(label: "hc_api_code_cache_invalidations_total")
    /// 1 while changes are heard and codes kept, 0 while every lookup reads PostgreSQL.
    private let listeningGauge = Gauge(label: "hc_api_code_cache_listening")

    /// - Parameters:
    ///   - entries: most codes kept (0: none, every lookup reads PostgreSQL).
    ///   - maximumAge: longest a kept code is answered before it is read again.
    ///   - reads: reads one person's materialised code (`nil`: none stored).
    public init(entries: Int, maximumAge: Duration, reads: any MaterialisedCodeReads) {
        self.state = Mutex(CodeCacheState(capacity: entries, maximumAge: maximumAge))
        self.reads = reads
    }

    /// `subject`'s materialised code (`nil`: none stored), from memory when kept and fresh, else read.
    public func code(of subject: String, now: Instant) async throws -> MaterialisedCode? {
        // A generation dropped to make room is returned, so that it is freed here, outside the lock.
        let (lookup, _) = state.withLock { $0.lookup(subject, now: now) }
        switch lookup {
        case .hit(let code):
            hits.increment()
            return code
        case .miss(let token):
            misses.increment()
            let code = try await reads.materialisedCode(of: subject)
            if let token { state.withLock { $0.store(code, of: subject, token: token, now: now) } }
            return code
        }
    }

    /// `subject`'s code if it is kept and fresh (`.some(nil)`: kept as "none stored"), without reading:
    /// `nil` when it would have to be read. Lets a lookup answered from memory skip the read deadline.
    public func kept(of subject: String, now: Instant) -> MaterialisedCode?? {
        let (code, _) = state.withLock { $0.kept(subject, now: now) }
        if code != nil { hits.increment() }
        return code
    }

    /// Drops what `change` announces.
    public func apply(_ change: CodeChange) {
        let dropped: Int
        switch change {
        case .subjects(let subjects):
            dropped = state.withLock { $0.invalidate(subjects) }
        case .everything:
            dropped = state.withLock { $0.clear() }.reduce(0) { $0 + $1.count }
        }
        invalidations.increment(by: dropped)
    }

    /// The listener is live: from now on every change is heard, so codes may be kept.
    public func listening() {
        state.withLock { $0.listening = true }
        listeningGauge.record(1)
    }

    /// The listener lost its connection: announcements may be missed, so drop everything and keep
    /// nothing until it listens again.
    public func deaf() {
        // What is dropped is returned and so freed outside the lock.
        _ = state.withLock { state in
            state.listening = false
            return state.clear()
        }
        listeningGauge.record(0)
    }

    /// Lookups answered from memory and lookups that read PostgreSQL, since start.
    public var statistics: (hits: Int, misses: Int) {
        state.withLock { ($0.hits, $0.misses) }
    }
}

/// The bookkeeping of ``CodeCache``: which codes are kept, which reads may keep what they return.
///
/// Codes live in two generations: lookups and stores go to `recent`; when it holds half the
/// capacity it becomes `older` and the previous `older` is dropped. A hit in `older` moves the code
/// back to `recent`. So the codes looked up within the last half-capacity of distinct lookups stay,
/// at O(1) per operation, with no list to maintain.
///
/// A read that may keep its result leaves a `loading` mark with a token. An announced change removes
/// the mark, so a read that started before the change committed cannot keep the old code after it.
struct CodeCacheState {
    enum Slot {
        case loading(UInt64)
        case kept(MaterialisedCode?, since: Instant)
    }

    enum Lookup {
        case hit(MaterialisedCode?)
        /// Read PostgreSQL; with a token, hand the result to ``store(_:of:token:now:)``.
        case miss(token: UInt64?)
    }

    let capacity: Int
    let maximumAge: Int64
    var listening = false
    private(set) var recent: [String: Slot] = [:]
    private(set) var older: [String: Slot] = [:]
    private var nextToken: UInt64 = 0
    private(set) var hits = 0
    private(set) var misses = 0

    init(capacity: Int, maximumAge: Duration) {
        self.capacity = max(capacity, 0)
        self.maximumAge = maximumAge.microseconds
    }

    var count: Int { recent.count + older.count }

    /// What a lookup of `subject` does, and the generation dropped to make room (release it outside
    /// the lock).
    mutating func lookup(_ subject: String, now: Instant) -> (Lookup, dropped: [String: Slot]) {
        guard listening, capacity > 0 else {
            misses += 1
            return (.miss(token: nil), [:])
        }
        let (code, dropped) = kept(subject, now: now)
        if let code { return (.hit(code), dropped) }
        misses += 1
        nextToken += 1
        recent[subject] = .loading(nextToken)
        return (.miss(token: nextToken), rotateIfFull())
    }

    /// The code kept for `subject` (a hit), or `nil` when none is kept: unlike ``lookup(_:now:)`` it
    /// marks no read and counts no miss. Also returns the generation dropped to make room.
    mutating func kept(_ subject: String, now: Instant) -> (MaterialisedCode??, dropped: [String: Slot]) {
        guard listening, capacity > 0 else { return (nil, [:]) }
        if case .kept(let code, let since)? = recent[subject], fresh(since, now) {
            hits += 1
            return (.some(code), [:])
        }
        // Found in `older`, it moves back to `recent`; a stale or loading entry there is dropped.
        if case .kept(let code, let since)? = older.removeValue(forKey: subject), fresh(since, now) {
            hits += 1
            recent[subject] = .kept(code, since: since)
            return (.some(code), rotateIfFull())
        }
        return (nil, [:])
    }

    /// Keeps what a read returned, unless a change was announced, the listener went deaf or another
    /// read of the same person started since its lookup.
    mutating func store(_ code: MaterialisedCode?, of subject: String, token: UInt64, now: Instant) {
        guard listening else { return }
        if case .loading(token)? = recent[subject] {
            recent[subject] = .kept(code, since: now)
        } else if case .loading(token)? = older[subject] {
            older[subject] = .kept(code, since: now)
        }
    }

    /// Drops the codes of `subjects` and their pending reads' marks; returns how many entries went.
    mutating func invalidate(_ subjects: [Substring]) -> Int {
        var dropped = 0
        for subject in subjects {
            let key = String(subject)
            if recent.removeValue(forKey: key) != nil { dropped += 1 }
            if older.removeValue(forKey: key) != nil { dropped += 1 }
        }
        return dropped
    }

    /// Drops everything; returns both generations, for release outside the lock.
    mutating func clear() -> [[String: Slot]] {
        defer {
            recent = [:]
            older = [:]
        }
        return [recent, older]
    }

    private func fresh(_ since: Instant, _ now: Instant) -> Bool {
        now.microsecondsSinceEpoch - since.microsecondsSinceEpoch < maximumAge
    }

    /// When `recent` holds half the capacity it becomes `older`; returns the generation dropped.
    private mutating func rotateIfFull() -> [String: Slot] {
        guard recent.count >= max(capacity / 2, 1) else { return [:] }
        var dropped: [String: Slot] = [:]
        swap(&dropped, &older)
        swap(&older, &recent)
        return dropped
    }
}
