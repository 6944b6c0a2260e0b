/// When an event happened and when the backbone learnt of it, with its idempotency key: what the bitemporal
/// visibility rule (docs/POLICY.md §3.0) and the "same time, greater id is later" tie-break need.
struct EventStamp: Sendable, Hashable {
    var source: String
    var id: String
    var time: Instant
    /// `recordedtime`, or `time` for events without one.
    var recorded: Instant

    init(source: String, id: String, time: Instant, recorded: Instant) {
        self.source = source
        self.id = id
        self.time = time
        self.recorded = recorded
    }

    init(_ event: CloudEvent) {
        self.source = event.source
        self.id = event.id
        self.time = event.time
        self.recorded = event.effectiveRecordedTime
    }

    var reference: EventReference { EventReference(source: source, id: id) }

    /// Chronological order: by `time`, then by `id` (the greater id counts as later), then by `source`, all
    /// byte-wise, so that the order never depends on arrival order.
    static func precedes(_ lhs: EventStamp, _ rhs: EventStamp) -> Bool {
        if lhs.time != rhs.time { return lhs.time < rhs.time }
        if !lhs.id.hasSameBytes(as: rhs.id) { return lhs.id.bytesPrecede(rhs.id) }
        return lhs.source.bytesPrecede(rhs.source)
    }

    /// Whether the event is in the evaluation's known set: happened by `at`, recorded by `knownAt`.
    @inline(__always)
    func isVisible(at: Int64, knownAt: Int64) -> Bool {
        time.microsecondsSinceEpoch <= at && recorded.microsecondsSinceEpoch <= knownAt
    }
}

/// A record of a person's fold, kept in chronological order.
protocol StampedRecord {
    var stamp: EventStamp { get }
}

extension EventStamp: StampedRecord {
    var stamp: EventStamp { self }
}

extension Array where Element: StampedRecord {
    /// Inserts keeping chronological order (binary search; histories are short and mostly arrive in order).
    mutating func insertChronologically(_ record: Element) {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if EventStamp.precedes(record.stamp, self[middle].stamp) {
                high = middle
            } else {
                low = middle + 1
            }
        }
        insert(record, at: low)
    }
}

struct TestRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    var test: TestResult.Method
    var result: TestResult.Outcome
}

struct TravelRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    var from: AreaCode
    var to: AreaCode
    var arrivedAt: Instant
}

struct DeclarationRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    var symptoms: [Declaration.Symptom]
    var temperatureCelsius: Double?
    var location: AreaCode?
}

struct ExposureRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    var kind: Exposure.Kind
}

struct ReviewRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    var status: CodeStatus
    var validUntil: Instant
}

struct RetractionRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    /// The `id` of the retracted event, which has the retraction's `source`.
    var retracts: String

    var target: EventReference { EventReference(source: stamp.source, id: retracts) }
}

/// The fold of one person's events: what the policy needs from each, in chronological order, with nothing
/// decided yet. Deciding happens at evaluation time, because the answer depends on `at` and `knownAt`
/// (late-recorded events, retractions). The fold is commutative: applying the same events in any order
/// yields an equal state. The projector stores it as JSONB (``storedJSON()``).
public struct PersonState: Sendable, Hashable {
    var tests: [TestRecord] = []
    var travels: [TravelRecord] = []
    var declarations: [DeclarationRecord] = []
    var exposures: [ExposureRecord] = []
    var reviews: [ReviewRecord] = []
    var retractions: [RetractionRecord] = []
    /// Idempotency keys of the events the state holds; derived, so not encoded.
    private var applied: Set<EventReference> = []
    /// The horizon of the last ``prune(before:for:)``: the state answers evaluations at this instant or
    /// later exactly as the whole history would; `nil`: nothing was ever left out.
    public internal(set) var prunedBefore: Instant?
    /// The ``Policy/pruningSignature`` of the policy the state was pruned for: under a policy with another
    /// signature (a rule that keeps facts longer) the state may lack what that policy needs.
    public internal(set) var prunedFor: String?
    /// Events folded in and later left out by ``prune(before:for:)``.
    var prunedCount = 0

    public init() {}

    /// Folds a person event in. Returns `false`, changing nothing, if an event with the same (`source`, `id`)
    /// was already applied (publisher retries), or if the event is not a person event (`hc.risk-area.v1`
    /// belongs to ``RiskAreaMap``).
    @discardableResult
    public mutating func apply(_ event: CloudEvent) -> Bool {
        if case .riskArea = event.payload { return false }
        guard applied.insert(event.reference).inserted else { return false }
        let stamp = EventStamp(event)
        switch event.payload {
        case .testResult(let test):
            tests.insertChronologically(TestRecord(stamp: stamp, test: test.test, result: test.result))
        case .travel(let travel):
            travels.insertChronologically(
                TravelRecord(stamp: stamp, from: travel.from, to: travel.to, arrivedAt: travel.arrivedAt)
            )
        case .declaration(let declaration):
            declarations.insertChronologically(
                DeclarationRecord(
                    stamp: stamp,
                    symptoms: declaration.symptoms,
                    temperatureCelsius: declaration.temperatureCelsius,
                    location: declaration.location
                )
            )
        case .exposure(let exposure):
            exposures.insertChronologically(ExposureRecord(stamp: stamp, kind: exposure.kind))
        case .review(let review):
            reviews.insertChronologically(
                ReviewRecord(stamp: stamp, status: review.status, validUntil: review.validUntil)
            )
        case .retraction(let retraction):
            retractions.insertChronologically(RetractionRecord(stamp: stamp, retracts: retraction.retracts))
        case .riskArea:
            break
        }
        return true
    }

    /// Number of distinct events folded in, including those left out since.
    public var eventCount: Int { applied.count + prunedCount }

    /// Number of events the state holds.
    public var heldEventCount: Int { applied.count }

    /// Whether the state answers an evaluation by `policy` at `at` exactly as the whole history would: it does
    /// from its ``prunedBefore`` on (for any `knownAt`) if it was pruned for that policy's fact lifetimes;
    /// otherwise the archive has to be replayed.
    public func answers(at: Instant, for policy: Policy) -> Bool {
        guard let prunedBefore else { return true }
        return at >= prunedBefore && prunedFor == policy.pruningSignature
    }

    /// The state of a history pruned at `horizon` for `policy`, from the archived events that can matter then
    /// (those at or after ``Policy/relevanceCutoff(at:)``, in any order) and the number of the others, which the
    /// archive keeps and the state counts as left out. What a state pruned for another policy is replaced by.
    public init(relevant events: [CloudEvent], leftOut: Int, prunedBefore horizon: Instant, for policy: Policy) {
        self.init()
        for event in events { apply(event) }
        prunedCount = leftOut
        prune(before: horizon, for: policy)
    }

    /// Leaves out the facts that can no longer make any rule of `policy` fire at `horizon` or later, whatever
    /// else is learnt, whenever (docs/POLICY.md §3.7): an exposure or declaration whose rules' durations have
    /// run out by then, a journey whose presences are older than the longest presence rule. What stays:
    /// tests, reviews and retractions, whose weight depends on other facts and on what is known when (the
    /// latest visible positive or review decides, a retraction may arrive before or after what it retracts),
    /// and every fact that can still fire. Whether a fact is left out depends only on the fact and the
    /// horizon, so pruning as events arrive or once at the end gives the same state. The archive keeps
    /// everything; an evaluation before the horizon replays it (``answers(at:for:)``). A state pruned for
    /// another policy is left as it is: it has to be folded anew from the archive
    /// (``init(relevant:leftOut:prunedBefore:for:)``).
    ///
    /// A horizon behind the state's own (another process's clock; a projector transaction that read its clock,
    /// then waited while a rebuild's switch folded the person at a later instant) cannot move the horizon back:
    /// the state cannot answer instants it already left facts out for. It prunes at its own horizon instead,
    /// so that what arrived meanwhile is left out as the whole history pruned there would leave it out.
    public mutating func prune(before horizon: Instant, for policy: Policy) {
        guard prunedFor == nil || prunedFor == policy.pruningSignature else { return }
        let horizon = max(horizon, prunedBefore ?? horizon)
        let limit = horizon.microsecondsSinceEpoch
        let lifetimes = policy.factLifetimes
        var left: Set<EventReference> = []
        func over(_ time: Int64, after lifetime: Int64?) -> Bool {
            guard let lifetime else { return true }
            let (end, overflow) = time.addingReportingOverflow(lifetime)
            return !overflow && end <= limit
        }
        exposures.removeAll { record in
            let leave = over(record.stamp.time.microsecondsSinceEpoch, after: lifetimes.exposure[record.kind])
            if leave { left.insert(record.stamp.reference) }
            return leave
        }
        declarations.removeAll { record in
            let time = record.stamp.time.microsecondsSinceEpoch
            let leave =
                over(time, after: lifetimes.symptoms)
                && (record.location == nil || over(time, after: lifetimes.presence))
            if leave { left.insert(record.stamp.reference) }
            return leave
        }
        travels.removeAll { record in
            let last = max(record.stamp.time.microsecondsSinceEpoch, record.arrivedAt.microsecondsSinceEpoch)
            let leave = over(last, after: lifetimes.presence)
            if leave { left.insert(record.stamp.reference) }
            return leave
        }
        applied.subtract(left)
        prunedCount += left.count
        prunedBefore = horizon
        prunedFor = policy.pruningSignature
    }

    /// The events retracted by retractions visible at `at` as known at `knownAt` (a retraction withdraws its own
    /// publisher's event): what an evaluation then leaves out, and what an explanation shows struck through.
    public func retractedEvents(at: Instant, knownAt: Instant) -> Set<EventReference> {
        Set(
            retractions.lazy.filter {
                $0.stamp.isVisible(at: at.microsecondsSinceEpoch, knownAt: knownAt.microsecondsSinceEpoch)
            }
            .map(\.target)
        )
    }

    /// Every area code the person's travels and declarations mention: a new designation for code C can only
    /// change the codes of persons with a visited area that C covers.
    public var visitedAreas: Set<AreaCode> {
        var areas = Set<AreaCode>()
        for travel in travels {
            areas.insert(travel.from)
            areas.insert(travel.to)
        }
        for declaration in declarations {
            if let location = declaration.location { areas.insert(location) }
        }
        return areas
    }

    /// Appends the `time` of every event known at `knownAt` that happens after `at` (docs/POLICY.md §3.5: such an
    /// event starts to count at its `time`). Live evaluations meet one only for an event published ahead of
    /// the gateway's clock within the accepted skew.
    func appendLaterInstants(after at: Int64, knownAt: Int64, to instants: inout [Int64]) {
        func collect(_ stamps: some Sequence<EventStamp>) {
            for stamp in stamps {
                let time = stamp.time.microsecondsSinceEpoch
                if time > at, stamp.recorded.microsecondsSinceEpoch <= knownAt { instants.append(time) }
            }
        }
        collect(tests.lazy.map(\.stamp))
        collect(travels.lazy.map(\.stamp))
        collect(declarations.lazy.map(\.stamp))
        collect(exposures.lazy.map(\.stamp))
        collect(reviews.lazy.map(\.stamp))
        collect(retractions.lazy.map(\.stamp))
    }

    /// Rebuilds the idempotency keys after the records were read back from storage.
    mutating func rebuildAppliedKeys() throws(StoredJSONError) {
        let stamps =
            tests.map(\.stamp) + travels.map(\.stamp) + declarations.map(\.stamp) + exposures.map(\.stamp)
            + reviews.map(\.stamp) + retractions.map(\.stamp)
        applied = Set(stamps.map(\.reference))
        guard applied.count == stamps.count else {
            throw StoredJSONError(document: "person-state", field: "", reason: "an event appears twice in the state")
        }
    }
}

/// A risk-level designation as folded into the map.
struct DesignationRecord: StampedRecord, Sendable, Hashable {
    var stamp: EventStamp
    var area: AreaCode
    var level: RiskAreaDesignation.Level
    var effectiveFrom: Instant
    var effectiveUntil: Instant?

    /// Whether `[effectiveFrom, effectiveUntil)` contains `instant`.
    @inline(__always)
    func isEffective(at instant: Int64) -> Bool {
        effectiveFrom.microsecondsSinceEpoch <= instant
            && (effectiveUntil.map { instant < $0.microsecondsSinceEpoch } ?? true)
    }
}

/// Every `hc.risk-area.v1` designation known, and the retractions of designations, indexed by exact area
/// code. Shared by all persons' evaluations; like ``PersonState`` it keeps history and decides nothing until
/// evaluation (`at`, `knownAt`).
public struct RiskAreaMap: Sendable, Hashable {
    /// Designations per exact code, in chronological order.
    private var byArea: [AreaCode: [DesignationRecord]] = [:]
    /// Retractions keyed by the (`source`, `id`) they retract; a retraction may arrive before its target.
    private var retractionsByTarget: [EventReference: [EventStamp]] = [:]
    private var applied: Set<EventReference> = []
    /// The latest `time` of any designation or retraction folded in: an evaluation at or after it has no
    /// designation that starts to count later (``appendLaterInstants(after:knownAt:for:to:)``).
    private var latestTime = Int64.min

    public init() {}

    /// Folds in a designation, or a retraction whose subject is an area code. Returns `false`, changing
    /// nothing, for a duplicate (`source`, `id`) or any other event.
    @discardableResult
    public mutating func apply(_ event: CloudEvent) -> Bool {
        switch event.payload {
        case .riskArea(let designation):
            guard let area = AreaCode(event.subject), applied.insert(event.reference).inserted else { return false }
            latestTime = max(latestTime, event.time.microsecondsSinceEpoch)
            byArea[area, default: []].insertChronologically(
                DesignationRecord(
                    stamp: EventStamp(event),
                    area: area,
                    level: designation.level,
                    effectiveFrom: designation.effectiveFrom,
                    effectiveUntil: designation.effectiveUntil
                )
            )
            return true
        case .retraction(let retraction):
            guard !event.isPersonEvent, applied.insert(event.reference).inserted else { return false }
            latestTime = max(latestTime, event.time.microsecondsSinceEpoch)
            retractionsByTarget[EventReference(source: event.source, id: retraction.retracts), default: []]
                .insertChronologically(EventStamp(event))
            return true
        default:
            return false
        }
    }

    /// The codes with at least one designation, ascending.
    public var designatedAreas: [AreaCode] { byArea.keys.sorted() }

    /// The designation that sets the level of exactly `area` at instant `instant`: among the designations
    /// visible at (`at`, `knownAt`) and not retracted, whose effective interval contains `instant`, the one
    /// issued latest. Returns its position (for ``stamp(of:_:)``) and level.
    func designation(
        for area: AreaCode,
        at instant: Int64,
        visibleAt at: Int64,
        knownAt: Int64
    )
        -> (position: Int, level: RiskAreaDesignation.Level)?
    {
        guard let records = byArea[area] else { return nil }
        var position = records.count
        while position > 0 {
            position -= 1
            let record = records[position]
            if record.isEffective(at: instant), record.stamp.isVisible(at: at, knownAt: knownAt),
                !isRetracted(record.stamp, at: at, knownAt: knownAt)
            {
                return (position, record.level)
            }
        }
        return nil
    }

    /// The stamp of the designation at `position` for `area`, as returned by ``designation(for:at:visibleAt:knownAt:)``.
    func stamp(of area: AreaCode, _ position: Int) -> EventStamp {
        byArea[area]![position].stamp
    }

    /// Appends the `time` of every designation of `person`'s areas (each code, its city and its province), and
    /// of every retraction of one, known at `knownAt` and happening after `at`: from that instant on it can
    /// change the level of a presence (docs/POLICY.md §3.5).
    func appendLaterInstants(after at: Int64, knownAt: Int64, for person: PersonState, to instants: inout [Int64]) {
        guard latestTime > at else { return }
        var codes = Set<AreaCode>()
        for area in person.visitedAreas {
            codes.insert(area)
            codes.formUnion(area.ancestors)
        }
        for code in codes {
            guard let records = byArea[code] else { continue }
            for record in records {
                let time = record.stamp.time.microsecondsSinceEpoch
                if time > at, record.stamp.recorded.microsecondsSinceEpoch <= knownAt { instants.append(time) }
                for retraction in retractionsByTarget[record.stamp.reference] ?? [] {
                    let time = retraction.time.microsecondsSinceEpoch
                    if time > at, retraction.recorded.microsecondsSinceEpoch <= knownAt { instants.append(time) }
                }
            }
        }
    }

    private func isRetracted(_ stamp: EventStamp, at: Int64, knownAt: Int64) -> Bool {
        guard !retractionsByTarget.isEmpty, let retractions = retractionsByTarget[stamp.reference] else {
            return false
        }
        return retractions.contains { $0.isVisible(at: at, knownAt: knownAt) }
    }
}

/// One history evaluated at rising instants, each evaluation on the events that happened by its instant less
/// those that can no longer matter then (``PersonState/prune(before:for:)``), so that evaluating a long history
/// at each of its own instants costs what each instant's recent events cost, not the whole history each time.
/// The reasons (docs/POLICY.md §3.6) are those of the whole history: they depend only on events that happened
/// by the instant. (`validUntil` looks at later events too, so it is not offered.)
public struct RisingEvaluation: Sendable {
    private let policy: Policy
    private let areas: RiskAreaMap
    /// The events by `time`.
    private let events: [CloudEvent]
    private var next = 0
    private var state = PersonState()

    public init(events: [CloudEvent], policy: Policy, areas: RiskAreaMap) {
        self.events = events.sorted { $0.time < $1.time }
        self.policy = policy
        self.areas = areas
    }

    /// The reasons at `instant` as known at `knownAt`; instants must not go down from one call to the next
    /// (an earlier one starts over from the first event).
    public mutating func reasons(at instant: Instant, knownAt: Instant) -> [CodeReason] {
        if let horizon = state.prunedBefore, instant < horizon {
            state = PersonState()
            next = 0
        }
        while next < events.count, events[next].time <= instant {
            state.apply(events[next])
            next += 1
        }
        state.prune(before: instant, for: policy)
        return policy.reasons(state, areas: areas, at: instant, knownAt: knownAt)
    }
}
