/// How a proposed change (a new rule set, a new designation) would move people's codes: counts of each
/// transition (green→yellow, yellow→red, …) by area, with a few sample pseudonyms each, so that an operator
/// sees the blast radius before go-live (`healthcode impact`) and a change that would turn many people red is
/// held for a second operator (``turningRed``).
///
/// A person's area is the last one the state knows them in (the destination of their latest journey or the
/// location of their latest declaration, whichever happened later); people with neither are counted under
/// no area. Reports of disjoint sets of people merge (one per worker).
public struct ImpactReport: Sendable, Equatable {
    /// One code colour moving to another.
    public struct Transition: Sendable, Hashable, Comparable {
        public var from: CodeStatus
        public var to: CodeStatus

        public init(from: CodeStatus, to: CodeStatus) {
            self.from = from
            self.to = to
        }

        public static func < (lhs: Transition, rhs: Transition) -> Bool {
            (lhs.from, lhs.to) < (rhs.from, rhs.to)
        }
    }

    /// People moved by one transition in one area.
    public struct Line: Sendable, Equatable {
        /// `nil`: people whose state knows no area.
        public var area: AreaCode?
        public var transition: Transition
        public var count: Int
        /// Up to ``ImpactReport/samplesPerLine`` pseudonyms, the smallest, so that reports are reproducible.
        public var samples: [String]
    }

    /// How many pseudonyms each line keeps.
    public let samplesPerLine: Int
    /// People evaluated.
    public private(set) var people = 0
    /// People whose code would stay the same colour, by colour.
    public private(set) var unchanged: [CodeStatus: Int] = [:]
    private var moved: [Key: (count: Int, samples: [String])] = [:]

    private struct Key: Hashable {
        var area: AreaCode?
        var transition: Transition
    }

    public init(samplesPerLine: Int = 5) {
        self.samplesPerLine = samplesPerLine
    }

    /// A report as read back (``init(storedJSON:)``).
    init(people: Int, unchanged: [CodeStatus: Int], lines: [Line], samplesPerLine: Int) {
        self.samplesPerLine = samplesPerLine
        self.people = people
        self.unchanged = unchanged
        for line in lines {
            moved[Key(area: line.area, transition: line.transition)] = (line.count, line.samples)
        }
    }

    /// Counts one person whose code would be `to` instead of `from`.
    public mutating func record(_ subject: String, area: AreaCode?, from: CodeStatus, to: CodeStatus) {
        people += 1
        guard from != to else {
            unchanged[from, default: 0] += 1
            return
        }
        let key = Key(area: area, transition: Transition(from: from, to: to))
        var entry = moved[key] ?? (0, [])
        entry.count += 1
        Self.keepSmallest(subject, in: &entry.samples, limit: samplesPerLine)
        moved[key] = entry
    }

    /// Adds the counts of a report on other people.
    public mutating func merge(_ other: ImpactReport) {
        people += other.people
        for (status, count) in other.unchanged { unchanged[status, default: 0] += count }
        for (key, entry) in other.moved {
            var mine = moved[key] ?? (0, [])
            mine.count += entry.count
            for subject in entry.samples { Self.keepSmallest(subject, in: &mine.samples, limit: samplesPerLine) }
            moved[key] = mine
        }
    }

    private static func keepSmallest(_ subject: String, in samples: inout [String], limit: Int) {
        guard samples.count < limit || subject < samples[samples.count - 1] else { return }
        let index = samples.firstIndex { subject < $0 } ?? samples.count
        samples.insert(subject, at: index)
        if samples.count > limit { samples.removeLast() }
    }

    /// People whose code would move, in all.
    public var changed: Int { moved.values.reduce(0) { $0 + $1.count } }

    /// People who are not red now and would be: what holds a change for a second operator.
    public var turningRed: Int {
        moved.filter { $0.key.transition.to == .red }.values.reduce(0) { $0 + $1.count }
    }

    /// People moved by each transition, in all areas.
    public var byTransition: [Transition: Int] {
        moved.reduce(into: [:]) { $0[$1.key.transition, default: 0] += $1.value.count }
    }

    /// Every line: the transitions towards red first, then by count (most first), area and transition.
    public var lines: [Line] {
        moved.map {
            Line(area: $0.key.area, transition: $0.key.transition, count: $0.value.count, samples: $0.value.samples)
        }
        .sorted { lhs, rhs in
            if (lhs.transition.to == .red) != (rhs.transition.to == .red) { return lhs.transition.to == .red }
            if lhs.count != rhs.count { return lhs.count > rhs.count }
            if lhs.area != rhs.area { return (lhs.area?.value ?? 0) < (rhs.area?.value ?? 0) }
            return lhs.transition < rhs.transition
        }
    }

    /// The report as JSON (what `healthcode impact --format json` prints and an approval keeps).
    public func jsonBytes() -> [UInt8] {
        var out = JSONWriter(capacity: 256 + moved.count * 200)
        out.raw("{")
        out.key("people")
        out.integer(people)
        out.raw(",")
        out.key("changed")
        out.integer(changed)
        out.raw(",")
        out.key("turningRed")
        out.integer(turningRed)
        out.raw(",")
        out.key("unchanged")
        out.raw("{")
        for (index, status) in CodeStatus.allCases.enumerated() {
            if index > 0 { out.raw(",") }
            out.string(status.rawValue)
            out.raw(":")
            out.integer(unchanged[status, default: 0])
        }
        out.raw("},")
        out.key("transitions")
        out.array(lines) { out, line in
            out.raw("{")
            out.key("area")
            if let area = line.area { out.string(area.description) } else { out.raw("null") }
            out.raw(",")
            out.key("from")
            out.string(line.transition.from.rawValue)
            out.raw(",")
            out.key("to")
            out.string(line.transition.to.rawValue)
            out.raw(",")
            out.key("count")
            out.integer(line.count)
            out.raw(",")
            out.key("samples")
            out.array(line.samples) { out, subject in out.string(subject) }
            out.raw("}")
        }
        out.raw("}")
        return out.bytes
    }

    public static func == (lhs: ImpactReport, rhs: ImpactReport) -> Bool {
        lhs.people == rhs.people && lhs.unchanged == rhs.unchanged && lhs.lines == rhs.lines
    }
}

/// What a change is compared against: one person's code now and under the change, both at the same instant.
public struct PolicyComparison: Sendable {
    public var current: Policy
    public var currentAreas: RiskAreaMap
    public var proposed: Policy
    public var proposedAreas: RiskAreaMap
    /// The instant both are evaluated at, as known then.
    public var at: Instant

    public init(current: Policy, currentAreas: RiskAreaMap, proposed: Policy, proposedAreas: RiskAreaMap, at: Instant) {
        self.current = current
        self.currentAreas = currentAreas
        self.proposed = proposed
        self.proposedAreas = proposedAreas
        self.at = at
    }

    /// A rule-set change: the same designations, another policy.
    public init(current: Policy, proposed: Policy, areas: RiskAreaMap, at: Instant) {
        self.init(current: current, currentAreas: areas, proposed: proposed, proposedAreas: areas, at: at)
    }

    /// A designation (or its retraction): the same policy, the designations with `event` applied.
    public init(policy: Policy, areas: RiskAreaMap, adding event: CloudEvent, at: Instant) {
        var proposed = areas
        proposed.apply(event)
        self.init(current: policy, currentAreas: areas, proposed: policy, proposedAreas: proposed, at: at)
    }

    /// Whether `state` answers both evaluations as the whole history would (``PersonState/answers(at:for:)``);
    /// if not, the person's history must be folded anew from the archive first.
    public func answers(_ state: PersonState) -> Bool {
        state.answers(at: at, for: current) && state.answers(at: at, for: proposed)
    }

    /// The earliest instant from which archived events can matter to either evaluation.
    public var relevanceCutoff: Instant {
        min(current.relevanceCutoff(at: at), proposed.relevanceCutoff(at: at))
    }

    /// Records `subject`'s code now and under the change in `report`.
    public func compare(_ state: PersonState, of subject: String, into report: inout ImpactReport) {
        let from = current.status(state, areas: currentAreas, at: at)
        let to = proposed.status(state, areas: proposedAreas, at: at)
        report.record(subject, area: state.lastKnownArea, from: from, to: to)
    }
}

extension PersonState {
    /// The area the state last knows the person in: the destination of the latest journey (by arrival) or the
    /// location of the latest declaration, whichever is later; `nil` if it knows neither.
    public var lastKnownArea: AreaCode? {
        let journey = travels.max { $0.arrivedAt < $1.arrivedAt }
        let declared = declarations.filter { $0.location != nil }.max { $0.stamp.time < $1.stamp.time }
        switch (journey, declared) {
        case (let journey?, let declared?):
            return declared.stamp.time > journey.arrivedAt ? declared.location : journey.to
        case (let journey?, nil): return journey.to
        case (nil, let declared?): return declared.location
        case (nil, nil): return nil
        }
    }
}
