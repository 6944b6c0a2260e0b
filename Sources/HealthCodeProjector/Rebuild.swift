import Foundation
import HealthCodeCore
import Logging
import Synchronization

/// A blue/green rebuild of the projection (`healthcode rebuild`): person states, codes and presences folded
/// anew from the archives (the log of record; Kafka need not hold every event) into fresh tables while the
/// live projection goes on, then switched in atomically.
///
/// 1. **Build.** The rebuild records the live positions (consumer_offsets, committed with the archive) and an
///    instant, then folds the archive person by person, in ranges of pseudonyms worked off by
///    ``Configuration/workers`` tasks; each chunk (whole people) is bulk-copied into the fresh tables in one
///    transaction with its range's checkpoint, so a rebuild that stopped resumes after its last chunk. The
///    fold is the projector's: ``PersonState`` applied per event, pruned at the instant less
///    ``Projection/pruneMargin`` for the policy that decides, the code evaluated at that instant. The fresh
///    tables get their indexes only after the bulk load.
/// 2. **Catch-up.** People with rows archived after the positions (and people present in areas whose
///    designations changed since) are folded anew from the whole archive, until such a tail is small.
/// 3. **Switch**, in one transaction: the live tables are locked against writers (the projector waits a
///    moment), the last tail is folded, the counts are compared (states = codes = people in the archive), a
///    sample of codes is re-evaluated by an independent path (a plain fold of each person's archived events,
///    read the way the query API reads them) and must match exactly, code changes go to the decision log (it
///    stays the record of every change), a `--rules` rule set is activated, and the tables are renamed. The
///    replaced tables stay as `*_previous` until ``dropPrevious()``.
public struct Rebuild: Sendable {
    /// Settings of a rebuild.
    public struct Configuration: Sendable {
        /// Tasks folding ranges in parallel. Default: the active processors.
        public var workers = ProcessInfo.processInfo.activeProcessorCount
        /// Archive rows per chunk (one transaction, one checkpoint). Default 20 000.
        public var chunkEvents = 20_000
        /// Codes re-evaluated independently before the switch. Default 500.
        public var sampleSize = 500
        /// A tail of at most this many people is folded inside the switch transaction (with the live tables
        /// locked); a larger one is caught up first. Default 2 000.
        public var switchTail = 2_000
        /// Catch-up rounds before switching whatever the tail. Default 10.
        public var catchUpRounds = 10
        /// The clock codes are evaluated by.
        public var now: @Sendable () -> Instant = { Instant.now() }

        public init() {}

        /// Lower bounds of the ranges of pseudonyms: "" and each hex digit after 0 (pseudonyms are hex HMACs).
        static let rangeBounds = [""] + "123456789abcdef".map { String($0) }
    }

    /// How far a rebuild is, for a progress bar.
    public struct Progress: Sendable {
        public var phase: RebuildRecord.Phase
        /// Archived events folded by the bulk build so far (resumed ranges count what they had done).
        public var events: Int
        public var totalEvents: Int
        public var people: Int
        /// Events folded by this process (the rate's numerator).
        public var eventsThisRun: Int
    }

    /// What a finished rebuild did.
    public struct Summary: Sendable {
        public var rebuild: Int64
        public var people: Int
        public var events: Int
        /// People folded again by the catch-up (including inside the switch).
        public var caughtUp: Int
        /// Codes re-evaluated independently, all equal.
        public var verified: Int
        /// Decision-log entries the switch appended (codes whose status or end changed).
        public var decisionsLogged: Int
        public var ruleSet: RuleSetIdentity?
        /// Whether this run resumed a rebuild that had stopped.
        public var resumed: Bool
        /// Whether it switched (see `switching` in ``Rebuild/run(rules:activatedBy:switching:progress:)``).
        public var switched: Bool
    }

    private let storage: any RebuildStorage
    private let configuration: Configuration
    private let configured: Policy
    private let logger: Logger

    /// - Parameter configured: the rule set that decides before any activation (a database that never had
    ///   one activated), as for the projector.
    public init(storage: any RebuildStorage, configuration: Configuration, configured: RuleSet, logger: Logger) {
        self.storage = storage
        self.configuration = configuration
        self.configured = Policy(ruleSet: configured)
        self.logger = logger
    }

    /// The latest rebuild, if any, and whether replaced tables are still kept.
    public func status() async throws -> (rebuild: RebuildRecord?, ranges: [RebuildRange], previous: Bool) {
        try await storage.withRebuildTransaction { session in
            let rebuild = try await session.latestRebuild()
            var ranges: [RebuildRange] = []
            if let rebuild { ranges = try await session.ranges(of: rebuild.id) }
            return (rebuild, ranges, try await session.previousTablesExist())
        }
    }

    /// Drops the tables the last switch replaced (the end of the rollback window).
    public func dropPrevious() async throws {
        guard try await storage.withRebuildTransaction({ try await $0.dropPrevious() }) else {
            throw RebuildError(code: "no-previous-tables", context: "no switch left *_previous tables to drop")
        }
    }

    /// Gives up the unfinished rebuild (one whose verification failed, or started with rules no longer
    /// wanted): its fresh tables are dropped; the live ones are untouched. The next run starts anew.
    public func abandon() async throws {
        guard try await storage.withRebuildTransaction({ try await $0.abandon() }) else {
            throw RebuildError(code: "no-unfinished-rebuild", context: "no rebuild is unfinished")
        }
    }

    /// Runs a rebuild to its switch, or resumes the one that stopped. `rules`: a stored rule set (its hash or
    /// `id@version`) that decides every code and is activated from the rebuild's instant by the switch, audited
    /// as `activatedBy`; `nil`: the rule sets in force as activated. Without `switching`, it stops once caught
    /// up (the fresh tables ready, nothing switched): a later run catches up again and switches, in a quiet
    /// hour for instance.
    public func run(
        rules: String?,
        activatedBy: String?,
        switching: Bool = true,
        progress: @escaping @Sendable (Progress) -> Void = { _ in }
    ) async throws -> Summary {
        let (rebuild, resumed, override) = try await start(rules: rules, activatedBy: activatedBy)
        let timeline = try await RuleSetCatalogSnapshot.read(from: storage, configured: configured)
        let policyAt: @Sendable (Instant) -> Policy = { instant in override ?? timeline.policy(at: instant) }
        var record = rebuild
        var built = (events: 0, people: 0, thisRun: 0)
        if record.phase == .building {
            built = try await build(record, policyAt: policyAt, progress: progress)
            try await storage.withRebuildTransaction { try await $0.finishBuild(record.id) }
            record.phase = .catchingUp
        } else {
            let ranges = try await storage.withRebuildTransaction { try await $0.ranges(of: record.id) }
            built = (ranges.reduce(0) { $0 + $1.events }, ranges.reduce(0) { $0 + $1.people }, 0)
        }
        progress(
            Progress(
                phase: .catchingUp,
                events: built.events,
                totalEvents: record.totalEvents,
                people: built.people,
                eventsThisRun: built.thisRun
            )
        )
        var caughtUp = 0
        for _ in 0..<configuration.catchUpRounds {
            let (tail, people) = try await storage.withRebuildTransaction { session in
                let tail = try await session.tail(of: record)
                let people = try await refold(tail, in: session, policyAt: policyAt)
                try await session.advance(record.id, past: tail)
                return (tail, people)
            }
            record.positions = tail.positions
            record.areaSequence = tail.areaSequence
            caughtUp += people
            if people <= configuration.switchTail { break }
        }
        guard switching else {
            return Summary(
                rebuild: record.id,
                people: built.people,
                events: built.events,
                caughtUp: caughtUp,
                verified: 0,
                decisionsLogged: 0,
                ruleSet: record.ruleSet,
                resumed: resumed,
                switched: false
            )
        }
        // The switch takes the live tables from under the projector and the re-evaluator, which lock them in
        // orders of their own (a code read, then states): the server may break a lock cycle by rolling the
        // switch back. It is tried again, at once: the tail it had folded is folded again.
        var attempt = 0
        var switched: (verified: Int, logged: Int, last: Int)?
        while switched == nil {
            attempt += 1
            do {
                switched = try await switchOver(record, policyAt: policyAt)
            } catch let error as RebuildError
                where error.code == RebuildError.lockConflict && attempt < Self.switchAttempts
            {
                logger.notice("the switch lost a lock conflict; trying again", metadata: ["attempt": "\(attempt)"])
            }
        }
        let (verified, logged, last) = switched ?? (0, 0, 0)
        caughtUp += last
        logger.notice(
            "rebuild switched",
            metadata: ["rebuild": "\(record.id)", "decisions": "\(logged)", "verified": "\(verified)"]
        )
        return Summary(
            rebuild: record.id,
            people: built.people,
            events: built.events,
            caughtUp: caughtUp,
            verified: verified,
            decisionsLogged: logged,
            ruleSet: record.ruleSet,
            resumed: resumed,
            switched: true
        )
    }

    /// Times the switch is tried when it loses a lock conflict.
    static let switchAttempts = 5

    /// The switch, in one transaction: the live tables locked against writers, the last tail folded, the
    /// counts and a sample verified, the tables renamed. Returns the codes verified, the decision-log entries
    /// appended and the people of the last tail.
    private func switchOver(
        _ record: RebuildRecord,
        policyAt: @escaping @Sendable (Instant) -> Policy
    ) async throws -> (verified: Int, logged: Int, last: Int) {
        try await storage.withRebuildTransaction { session in
            try await session.lockLiveTables()
            let tail = try await session.tail(of: record)
            let people = try await refold(tail, in: session, policyAt: policyAt)
            try await session.advance(record.id, past: tail)
            let counts = try await session.counts()
            guard counts.states == counts.archivedPeople, counts.codes == counts.archivedPeople else {
                throw RebuildError(
                    code: "verification-failed",
                    context: "the fresh tables hold \(counts.states) states and \(counts.codes) codes for "
                        + "\(counts.archivedPeople) people in the archive; nothing was switched"
                )
            }
            let verified = try await verifySample(in: session, policyAt: policyAt)
            return (verified, try await session.switchTables(record), people)
        }
    }

    /// The rebuild to work on: the unfinished one (it must have been started with the same `rules`), or a new
    /// one; and the policy `rules` names.
    private func start(
        rules: String?,
        activatedBy: String?
    ) async throws -> (RebuildRecord, resumed: Bool, override: Policy?) {
        try await storage.withRebuildTransaction { session in
            var override: (identity: RuleSetIdentity, policy: Policy)?
            if let rules {
                guard let stored = try await session.storedRuleSet(named: rules) else {
                    throw RebuildError(
                        code: "unknown-rule-set",
                        context:
                            "no stored rule set is named \(rules) (a hash sha256:… or id@version; see `rules list`)"
                    )
                }
                let ruleSet: RuleSet
                do { ruleSet = try RuleSet.decode(stored.body) } catch {
                    throw RebuildError(code: "rule-set-unreadable", context: "\(rules): \(error)")
                }
                guard activatedBy?.isEmpty == false else {
                    throw RebuildError(
                        code: "activation-unattributed",
                        context: "--rules needs --by NAME: who activates it"
                    )
                }
                override = (stored.identity, Policy(ruleSet: ruleSet))
            }
            if let latest = try await session.latestRebuild(), latest.phase == .building || latest.phase == .catchingUp
            {
                guard latest.ruleSet == override?.identity else {
                    throw RebuildError(
                        code: "rebuild-in-progress",
                        context: "rebuild \(latest.id) with rules \(latest.ruleSet?.hash ?? "in force") is unfinished; "
                            + "rerun it with the same --rules to resume it, or `healthcode rebuild abandon` it"
                    )
                }
                return (latest, true, override?.policy)
            }
            guard try await !session.previousTablesExist() else {
                throw RebuildError(
                    code: "previous-tables-kept",
                    context:
                        "the tables the last switch replaced are kept for rollback; run `healthcode rebuild drop-previous` first"
                )
            }
            let record = try await session.beginRebuild(
                at: configuration.now(),
                ruleSet: override?.identity,
                activatedBy: override == nil ? nil : activatedBy,
                ranges: Configuration.rangeBounds
            )
            return (record, false, override?.policy)
        }
    }

    /// The bulk build: every unfinished range, by ``Configuration/workers`` tasks.
    private func build(
        _ rebuild: RebuildRecord,
        policyAt: @escaping @Sendable (Instant) -> Policy,
        progress: @escaping @Sendable (Progress) -> Void
    ) async throws -> (events: Int, people: Int, thisRun: Int) {
        let ranges = try await storage.withRebuildTransaction { try await $0.ranges(of: rebuild.id) }
        let areas = try await storage.withRebuildTransaction {
            try await RiskAreaSnapshot.read(from: $0, through: rebuild.areaSequence)
        }
        let policy = policyAt(rebuild.evaluatedAt)
        let queue = Shared(ranges.filter { !$0.done })
        let tally = Shared(
            Progress(
                phase: .building,
                events: ranges.reduce(0) { $0 + $1.events },
                totalEvents: rebuild.totalEvents,
                people: ranges.reduce(0) { $0 + $1.people },
                eventsThisRun: 0
            )
        )
        progress(tally.withLock { $0 })
        try await withThrowingTaskGroup(of: Void.self) { workers in
            for _ in 0..<max(1, configuration.workers) {
                workers.addTask {
                    while let range = queue.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                        var range = range
                        while !range.done {
                            try Task.checkCancellation()
                            range = try await buildChunk(of: range, rebuild: rebuild, policy: policy, areas: areas) {
                                events,
                                people in
                                progress(
                                    tally.withLock {
                                        $0.events += events
                                        $0.eventsThisRun += events
                                        $0.people += people
                                        return $0
                                    }
                                )
                            }
                        }
                    }
                }
            }
            try await workers.waitForAll()
        }
        return tally.withLock { ($0.events, $0.people, $0.eventsThisRun) }
    }

    /// Folds, evaluates and writes the next chunk of `range`, with its checkpoint, in one transaction.
    private func buildChunk(
        of range: RebuildRange,
        rebuild: RebuildRecord,
        policy: Policy,
        areas: RiskAreaMap,
        done: (_ events: Int, _ people: Int) -> Void
    ) async throws -> RebuildRange {
        try await storage.withRebuildTransaction { session in
            let chunk = try await session.archivedPeople(in: range, limit: configuration.chunkEvents)
            let people = chunk.people.map {
                fold($0.subject, $0.events, policy: policy, areas: areas, at: rebuild.evaluatedAt)
            }
            try await session.write(people, replacing: false)
            let events = chunk.people.reduce(0) { $0 + $1.events.count }
            var next = range
            next.next = chunk.people.last?.subject ?? range.next
            next.done = chunk.exhausted
            next.events += events
            next.people += people.count
            try await session.checkpoint(
                rebuild: rebuild.id,
                range: range,
                next: next.next,
                done: next.done,
                events: next.events,
                people: next.people
            )
            done(events, people.count)
            return next
        }
    }

    /// One person folded as the projector folds them, and their code at `instant`.
    private func fold(
        _ subject: String,
        _ events: [CloudEvent],
        policy: Policy,
        areas: RiskAreaMap,
        at instant: Instant
    )
        -> RebuiltPerson
    {
        var state = PersonState()
        var presences: [Presence] = []
        for event in events {
            state.apply(event)
            presences += event.presences
        }
        state.prune(before: instant - Projection.pruneMargin, for: policy)
        return RebuiltPerson(
            subject: subject,
            state: state,
            decision: policy.evaluate(state, areas: areas, at: instant),
            evaluatedAt: instant,
            presences: presences
        )
    }

    /// Folds the tail's people anew from the whole archive into the fresh tables, evaluated now with every
    /// designation archived; returns how many.
    private func refold(
        _ tail: RebuildTail,
        in session: any RebuildSession,
        policyAt: (Instant) -> Policy
    ) async throws -> Int {
        var subjects = Set(tail.subjects)
        let covered = tail.areaCodes.compactMap { AreaCode($0)?.coveredCodes }
        if !covered.isEmpty { subjects.formUnion(try await session.subjectsPresent(in: covered)) }
        guard !subjects.isEmpty else { return 0 }
        let areas = try await RiskAreaSnapshot.read(from: session, through: tail.areaSequence)
        let instant = configuration.now()
        let policy = policyAt(instant)
        let archived = try await session.archivedEvents(of: Array(subjects))
        let people = subjects.sorted().compactMap { subject in
            archived[subject].map { fold(subject, $0, policy: policy, areas: areas, at: instant) }
        }
        try await session.write(people, replacing: true)
        return people.count
    }

    /// Re-evaluates a sample of the fresh codes from each person's archived events, folded plainly (no
    /// pruning) and evaluated at the code's instant by the policy that decided then; throws unless every one
    /// is equal. Returns how many were checked.
    private func verifySample(in session: any RebuildSession, policyAt: (Instant) -> Policy) async throws -> Int {
        let sample = try await session.sampleCodes(limit: configuration.sampleSize)
        let archived = try await session.archivedEvents(of: sample.map(\.subject))
        let areas = try await RiskAreaSnapshot.read(from: session, through: Int64.max)
        var differing = 0
        for code in sample {
            var state = PersonState()
            for event in archived[code.subject] ?? [] { state.apply(event) }
            let expected = policyAt(code.evaluatedAt).evaluate(state, areas: areas, at: code.evaluatedAt)
            if expected != code.decision { differing += 1 }
        }
        guard differing == 0 else {
            throw RebuildError(
                code: "verification-failed",
                context: "\(differing) of \(sample.count) sampled codes differ from their independent re-evaluation; "
                    + "nothing was switched"
            )
        }
        return sample.count
    }
}

/// A rebuild refused or failed: a stable code and what it concerns (never event contents).
public struct RebuildError: Error, CustomStringConvertible, Equatable {
    public var code: String
    public var context: String

    public init(code: String, context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "\(code): \(context)" }

    /// The code of a transaction that lost a lock conflict (a deadlock the server broke, a lock wait that ran
    /// out) and rolled back: trying again is safe.
    public static let lockConflict = "lock-conflict"
}

/// Every activation's policy, read once for a rebuild (a rebuild decides by the activations recorded when it ran).
struct RuleSetCatalogSnapshot: Sendable {
    let timeline: RuleSetTimeline
    let configured: Policy

    func policy(at instant: Instant) -> Policy { timeline.policy(at: instant) ?? configured }

    static func read(from storage: any RebuildStorage, configured: Policy) async throws -> RuleSetCatalogSnapshot {
        let rows = try await storage.withRebuildTransaction { try await $0.activations(after: 0) }
        var activations: [RuleSetTimeline.Activation] = []
        for row in rows {
            // A file that no longer decodes decides nothing, as for the projector (RuleSetCatalog).
            guard let ruleSet = try? RuleSet.decode(row.body) else { continue }
            activations.append(.init(order: row.activation, effectiveFrom: row.effectiveFrom, ruleSet: ruleSet))
        }
        return RuleSetCatalogSnapshot(timeline: RuleSetTimeline(activations), configured: configured)
    }
}

/// The designations archived up to a sequence number.
enum RiskAreaSnapshot {
    static func read(from archive: any AreaEventArchive, through sequence: Int64) async throws -> RiskAreaMap {
        var map = RiskAreaMap()
        for row in try await archive.areaEvents(after: 0) where row.sequence <= sequence {
            // Archived rows were validated before archiving, as RiskAreaCatalog reads them.
            if let event = try? EventDecoder.decode(Array(row.body.utf8)) { _ = map.apply(event) }
        }
        return map
    }
}

/// A value shared by a rebuild's worker tasks.
private final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { value.withLock { body(&$0) } }
}
