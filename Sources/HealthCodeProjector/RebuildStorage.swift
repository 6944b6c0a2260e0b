import HealthCodeCore

/// What a blue/green rebuild (``Rebuild``) needs from its database: sessions on one connection, each one
/// transaction that commits when its body returns and rolls back when it throws. PostgreSQL serves it in
/// production (`RebuildStore`).
public protocol RebuildStorage: Sendable {
    /// Runs `body` in one transaction on one connection.
    func withRebuildTransaction<Result: Sendable>(
        _ body: (any RebuildSession) async throws -> Result
    ) async throws -> Result
}

/// One rebuild as recorded (`rebuild_progress`).
public struct RebuildRecord: Sendable, Equatable {
    /// Where a rebuild is.
    public enum Phase: String, Sendable {
        /// Folding the archive into the fresh tables, range by range.
        case building
        /// The fresh tables hold the archive up to ``RebuildRecord/positions``; the tail is still to fold.
        case catchingUp = "catching-up"
        /// The fresh tables are live; the replaced ones are kept as `*_previous`.
        case switched
        /// The replaced tables are dropped.
        case dropped
        /// Given up before its switch (`healthcode rebuild abandon`): its fresh tables are dropped.
        case abandoned
    }

    public var id: Int64
    public var phase: Phase
    /// The instant the bulk build evaluates every code at.
    public var evaluatedAt: Instant
    /// The stored rule set named by `--rules`, which the switch activates from ``evaluatedAt``; `nil`: the
    /// rule sets in force as activated.
    public var ruleSet: RuleSetIdentity?
    /// Who asked for ``ruleSet`` (recorded with its activation).
    public var activatedBy: String?
    /// Archive rows at or after these positions are not yet in the fresh tables.
    public var positions: [RebuildPosition]
    /// The last area event the fresh tables were evaluated with.
    public var areaSequence: Int64
    /// Archived person events when the rebuild started (the progress bar's total).
    public var totalEvents: Int

    public init(
        id: Int64,
        phase: Phase,
        evaluatedAt: Instant,
        ruleSet: RuleSetIdentity?,
        activatedBy: String?,
        positions: [RebuildPosition],
        areaSequence: Int64,
        totalEvents: Int
    ) {
        self.id = id
        self.phase = phase
        self.evaluatedAt = evaluatedAt
        self.ruleSet = ruleSet
        self.activatedBy = activatedBy
        self.positions = positions
        self.areaSequence = areaSequence
        self.totalEvents = totalEvents
    }
}

/// A partition's position: the next offset the projector will archive.
public struct RebuildPosition: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var next: Int64

    public init(topic: String, partition: Int32, next: Int64) {
        self.topic = topic
        self.partition = partition
        self.next = next
    }
}

/// A range of pseudonyms (byte order) of the bulk build, `low` inclusive, `high` exclusive (`nil`: no end),
/// with its checkpoint: everyone up to and including `next` is in the fresh tables.
public struct RebuildRange: Sendable, Hashable {
    public var low: String
    public var high: String?
    public var next: String?
    public var done: Bool
    public var events: Int
    public var people: Int

    public init(low: String, high: String?, next: String?, done: Bool, events: Int, people: Int) {
        self.low = low
        self.high = high
        self.next = next
        self.done = done
        self.events = events
        self.people = people
    }
}

/// A chunk of the archive: whole people, in pseudonym order.
public struct ArchiveChunk: Sendable {
    /// Each person with every archived event.
    public var people: [(subject: String, events: [CloudEvent])]
    /// Whether the range has no one after these.
    public var exhausted: Bool

    public init(people: [(subject: String, events: [CloudEvent])], exhausted: Bool) {
        self.people = people
        self.exhausted = exhausted
    }
}

/// A person as the rebuild writes them into the fresh tables.
public struct RebuiltPerson: Sendable {
    public var subject: String
    public var state: PersonState
    public var decision: CodeDecision
    public var evaluatedAt: Instant
    /// Where the person's archived events place them (``CloudEvent/presences``), one row each.
    public var presences: [Presence]

    public init(
        subject: String,
        state: PersonState,
        decision: CodeDecision,
        evaluatedAt: Instant,
        presences: [Presence]
    ) {
        self.subject = subject
        self.state = state
        self.decision = decision
        self.evaluatedAt = evaluatedAt
        self.presences = presences
    }
}

/// What the live projection added since a rebuild's positions.
public struct RebuildTail: Sendable {
    /// People with archive rows at or after the positions.
    public var subjects: [String]
    /// Area codes of the area events archived after the rebuild's area sequence.
    public var areaCodes: [String]
    /// The positions and area sequence read before the tail was looked for: the next tail starts there.
    public var positions: [RebuildPosition]
    public var areaSequence: Int64

    public init(subjects: [String], areaCodes: [String], positions: [RebuildPosition], areaSequence: Int64) {
        self.subjects = subjects
        self.areaCodes = areaCodes
        self.positions = positions
        self.areaSequence = areaSequence
    }
}

/// Row counts compared before a switch.
public struct RebuildCounts: Sendable, Equatable {
    /// Distinct people in the archive.
    public var archivedPeople: Int
    public var states: Int
    public var codes: Int

    public init(archivedPeople: Int, states: Int, codes: Int) {
        self.archivedPeople = archivedPeople
        self.states = states
        self.codes = codes
    }
}

/// The operations of one rebuild transaction (see ``RebuildStorage``). "Fresh tables" are the
/// `*_rebuild` tables being built, "live tables" those the projector and the API use.
public protocol RebuildSession: AreaEventArchive, RuleSetActivations {
    /// The latest rebuild not yet dropped, if any.
    func latestRebuild() async throws -> RebuildRecord?
    /// Whether tables a switch replaced are still kept (`*_previous`).
    func previousTablesExist() async throws -> Bool
    /// The stored rule set with this hash (`sha256:…`) or `id@version`, with its file; `nil` if none has its file.
    func storedRuleSet(named name: String) async throws -> (identity: RuleSetIdentity, body: [UInt8])?
    /// Creates the fresh tables (empty, without indexes) and records a rebuild evaluated at `instant` over
    /// `ranges` (their lower bounds, ascending; the first is ""), with the live positions as its snapshot.
    func beginRebuild(
        at instant: Instant,
        ruleSet: RuleSetIdentity?,
        activatedBy: String?,
        ranges: [String]
    ) async throws -> RebuildRecord
    /// The ranges of `rebuild`, done or not.
    func ranges(of rebuild: Int64) async throws -> [RebuildRange]
    /// The next whole people of `range` after its checkpoint, about `limit` archive rows in all.
    func archivedPeople(in range: RebuildRange, limit: Int) async throws -> ArchiveChunk
    /// Every archived event of `subjects`.
    func archivedEvents(of subjects: [String]) async throws -> [String: [CloudEvent]]
    /// Writes people into the fresh tables (bulk copy); with `replacing`, their rows there are deleted first.
    func write(_ people: [RebuiltPerson], replacing: Bool) async throws
    /// Records that `range` of `rebuild` is in the fresh tables up to and including `next`.
    func checkpoint(
        rebuild: Int64,
        range: RebuildRange,
        next: String?,
        done: Bool,
        events: Int,
        people: Int
    ) async throws
    /// Ends the bulk build: the fresh tables get the live tables' indexes, triggers and grants.
    func finishBuild(_ rebuild: Int64) async throws
    /// What was archived after `rebuild`'s positions (reading the new positions first).
    func tail(of rebuild: RebuildRecord) async throws -> RebuildTail
    /// Moves `rebuild`'s positions to the tail's.
    func advance(_ rebuild: Int64, past tail: RebuildTail) async throws
    /// People in the fresh presence table present in any of `areas`.
    func subjectsPresent(in areas: [ClosedRange<Int32>]) async throws -> [String]
    /// Locks the live tables against writers (the projector, the re-evaluator) until the transaction ends.
    func lockLiveTables() async throws
    /// The counts the switch compares.
    func counts() async throws -> RebuildCounts
    /// Up to `limit` codes of the fresh tables picked at random.
    func sampleCodes(limit: Int) async throws -> [(subject: String, decision: CodeDecision, evaluatedAt: Instant)]
    /// Switches: appends a decision-log entry for every fresh code whose status or end differs from the live
    /// one, activates `rebuild`'s rule set (if any) from its instant, renames the live tables to `*_previous`
    /// and the fresh ones to the live names, counts the code census anew from the fresh codes, tells the query
    /// APIs to drop their kept codes and marks the rebuild switched. Returns the decision-log entries appended.
    func switchTables(_ rebuild: RebuildRecord) async throws -> Int
    /// Drops the `*_previous` tables; `false` if there were none.
    func dropPrevious() async throws -> Bool
    /// Drops the fresh tables of an unfinished rebuild and records it abandoned; `false` if none was unfinished.
    func abandon() async throws -> Bool
}
