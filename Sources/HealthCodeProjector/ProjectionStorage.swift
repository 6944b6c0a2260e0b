import HealthCodeCore

/// What the projector needs from its database: positions, dead letters, and transactions in which a
/// batch's effects and its partition's position commit together (which makes the projection
/// exactly-once). PostgreSQL serves it in production (`ProjectionStore`).
public protocol ProjectionStorage: AreaEventArchive, RuleSetActivations {
    /// The stored next offsets of `partitions` of `topic` for `group`, creating missing ones at 0.
    func positions(group: String, topic: String, partitions: [Int32]) async throws -> [Int32: Int64]

    /// Runs `body` in one transaction; it commits when `body` returns and rolls back when it throws.
    func withProjectionTransaction<Result: Sendable>(
        _ body: (any ProjectionTransaction) async throws -> Result
    ) async throws -> Result

    /// Dead letters in arrival order; replayed ones only with `includeReplayed`.
    func deadLetters(includeReplayed: Bool, limit: Int) async throws -> [StoredDeadLetter]

    /// Records a projector's status for the operators' dashboard, replacing its previous report.
    func report(_ report: ProjectorReport) async throws
    /// Samples the code census over time unless another projector did this minute, and when it did, deletes the
    /// operational facts kept no longer. Returns whether it sampled.
    @discardableResult
    func sampleOperationalFacts() async throws -> Bool
}

/// The operations of one projection transaction (see ``ProjectionStorage``).
public protocol ProjectionTransaction: AreaEventArchive, RuleSetActivations {
    /// Moves the partition's position from `expected` to `next` by compare-and-set; `false` (and no
    /// change) when the stored position is not `expected`.
    func advancePosition(
        group: String,
        topic: String,
        partition: Int32,
        expected: Int64,
        next: Int64
    ) async throws
        -> Bool
    /// The stored position of a partition, `nil` if none.
    func position(group: String, topic: String, partition: Int32) async throws -> Int64?
    /// Archives person events not archived before (idempotent by source and id); the positions of
    /// those newly archived.
    func archivePersonEvents(_ events: [ArchivedEvent]) async throws -> Set<EventPosition>
    /// Archives area events not archived before; the positions of those newly archived.
    func archiveAreaEvents(_ events: [ArchivedEvent]) async throws -> Set<EventPosition>
    /// People's stored states and codes, locked for this transaction; with `skipLocked`, people
    /// locked by another transaction are left out.
    func loadPeople(_ subjects: [String], skipLocked: Bool) async throws -> [String: StoredPerson]
    /// The archived events of `subjects` that can still matter to evaluations at `cutoff` or later
    /// (``Policy/relevanceCutoff(at:)``), and how many events each has archived in all.
    func archivedEvents(
        of subjects: [String],
        relevantFrom cutoff: Instant
    ) async throws
        -> [String: (events: [CloudEvent], total: Int)]
    /// Writes people's folded states.
    func saveStates(_ people: [(subject: String, state: PersonState)]) async throws
    /// Writes people's materialised codes, each with the area it is counted in, moves their counts in the code
    /// census (in `shard`'s rows) and announces the `changed` ones when the transaction commits.
    func saveCodes(
        _ codes: [(subject: String, decision: CodeDecision, area: AreaCode?)],
        evaluatedAt: Instant,
        changed: [String],
        shard: CounterShard
    )
        async throws
    /// Adds the events each publisher had newly archived in this transaction to its feed (in `shard`'s rows).
    func recordIngest(_ ingest: [PublisherIngest], shard: CounterShard) async throws
    /// Serialises transactions that read designations (shared) against those that add them (exclusive).
    func lockDesignations(exclusive: Bool) async throws
    /// Indexes where people were, for re-evaluation when their areas' designations change.
    func recordPresences(_ presences: [(subject: String, presence: Presence)]) async throws
    /// Queues a re-evaluation of the people present in an area range during a window.
    func enqueue(_ job: AreaReevaluation) async throws
    /// Takes the oldest queued re-evaluation no other transaction holds.
    func claimAreaReevaluation() async throws -> AreaReevaluation?
    /// The next people (after the job's progress) present in its areas during its window.
    func people(presentFor job: AreaReevaluation, limit: Int) async throws -> [String]
    /// Records a job's progress, or removes it when `finished`.
    func advance(_ job: AreaReevaluation, to nextSubject: String, finished: Bool) async throws
    /// People whose codes expire at or before `instant`.
    func dueSubjects(at instant: Instant, limit: Int) async throws -> [String]
    /// Appends changes of materialised codes to the decision log.
    func appendDecisions(_ records: [DecisionRecord]) async throws
    /// Marks a dead letter replayed.
    func markReplayed(_ id: Int64) async throws
    /// Keeps messages that could not be decoded or applied.
    func recordDeadLetters(_ letters: [DeadLetter]) async throws
}

extension ProjectionTransaction {
    /// People's stored states and codes, locked for this transaction (waiting for other holders).
    public func loadPeople(_ subjects: [String]) async throws -> [String: StoredPerson] {
        try await loadPeople(subjects, skipLocked: false)
    }

    /// Like ``loadPeople(_:skipLocked:)``, each state able to answer `policy` at `instant`: a state pruned for
    /// another policy (the rule set changed to one that keeps facts longer) is folded anew from the archived
    /// events that can matter, pruned at `instant` less ``Projection/pruneMargin``. Returns who was folded anew: their
    /// states hold every archived event, this transaction's newly archived ones too.
    func loadPeople(
        _ subjects: [String],
        skipLocked: Bool = false,
        answering policy: Policy,
        at instant: Instant
    ) async throws -> (people: [String: StoredPerson], foldedAnew: Set<String>) {
        var people = try await loadPeople(subjects, skipLocked: skipLocked)
        let stale = people.filter { !$0.value.state.answers(at: instant, for: policy) }.map(\.key)
        guard !stale.isEmpty else { return (people, []) }
        let horizon = instant - Projection.pruneMargin
        let archived = try await archivedEvents(of: stale, relevantFrom: policy.relevanceCutoff(at: horizon))
        for subject in stale {
            let (events, total) = archived[subject] ?? ([], 0)
            people[subject]?.state = PersonState(
                relevant: events,
                leftOut: total - events.count,
                prunedBefore: horizon,
                for: policy
            )
        }
        return (people, Set(stale))
    }
}
