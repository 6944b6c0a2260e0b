/// Evaluates persons against a rule set (POLICY.md §3): which rules fire at `at` on the events known at
/// `knownAt`, the resulting status, and until when that status holds.
///
/// Evaluation is pure and cheap (microseconds for a typical history), so the projector re-evaluates on every
/// event and `healthcode evaluate` evaluates whole files offline.
public struct Policy: Sendable {
    public let ruleSet: RuleSet
    private let rules: [CompiledRule]
    /// Severity rank by `CodeStatus` (indexed green, yellow, red); higher is more severe.
    private let severity: [Int]
    /// Rank by risk-area level (indexed low, medium, high); higher is riskier.
    private let levelRank: [Int]
    private let hasPresenceRules: Bool
    /// The level of an area without an effective designation.
    private let lowestLevel: RiskAreaDesignation.Level

    public init(ruleSet: RuleSet) {
        self.ruleSet = ruleSet
        var severity = [0, 0, 0]
        for (index, status) in ruleSet.precedence.enumerated() {
            severity[status.index] = ruleSet.precedence.count - 1 - index
        }
        self.severity = severity
        var levelRank = [0, 0, 0]
        for (index, level) in ruleSet.areaLevels.enumerated() { levelRank[level.index] = index }
        self.levelRank = levelRank
        self.lowestLevel = ruleSet.areaLevels.first ?? .low
        let names = ruleSet.rules.map(\.name)
        self.rules = ruleSet.rules.map { rule in
            CompiledRule(rule: rule, ruleIndex: { name in names.firstIndex(of: name) ?? -1 })
        }
        self.hasPresenceRules = rules.contains {
            if case .presence = $0.kind { return true }
            return false
        }
    }

    /// Evaluates `person` at `at` as known at `knownAt` (default `at`).
    ///
    /// Only events with `time <= at` and `recordedtime <= knownAt` count, minus those retracted by such
    /// events. `validUntil` is the earliest instant after `at` at which the status changes if no further
    /// event becomes known (the known set is held fixed), or `nil` if it never changes.
    public func evaluate(_ person: PersonState, areas: RiskAreaMap, at: Instant, knownAt: Instant? = nil)
        -> CodeDecision
    {
        var evaluation = Evaluation(
            person: person,
            areas: areas,
            at: at.microsecondsSinceEpoch,
            knownAt: (knownAt ?? at).microsecondsSinceEpoch,
            policy: self
        )
        evaluation.fire()
        let status = evaluation.status(at: evaluation.at)
        return CodeDecision(
            status: status,
            validUntil: evaluation.validUntil(status: status).map { Instant(microsecondsSinceEpoch: $0) },
            reasons: evaluation.reasons(),
            ruleSetID: ruleSet.id,
            ruleSetVersion: ruleSet.version,
            ruleSetHash: ruleSet.contentHash
        )
    }

    fileprivate struct CompiledRule: Sendable {
        enum Kind: Sendable {
            case reviewOverride
            case untilCleared(test: TestResult.Method, clearingTest: TestResult.Method, gap: Int64)
            case recovery(after: Int, duration: Int64)
            case window(test: TestResult.Method, duration: Int64, cancelledBy: TestResult.Method?)
            case exposure(kind: Exposure.Kind, duration: Int64)
            case presence(level: RiskAreaDesignation.Level, duration: Int64)
            case symptoms(threshold: Double, duration: Int64, cancelledBy: TestResult.Method?)
        }

        var kind: Kind
        var colour: CodeStatus

        init(rule: PolicyRule, ruleIndex: (String) -> Int) {
            switch rule.kind {
            case .reviewOverride:
                kind = .reviewOverride
                colour = .green
            case .positiveTestUntilCleared(let colour, let test, let clearingTest, let gap):
                kind = .untilCleared(test: test, clearingTest: clearingTest, gap: gap.microseconds)
                self.colour = colour
            case .recoveryObservation(let colour, let after, let duration):
                kind = .recovery(after: ruleIndex(after), duration: duration.microseconds)
                self.colour = colour
            case .positiveTestWindow(let colour, let test, let duration, let cancelledBy):
                kind = .window(test: test, duration: duration.microseconds, cancelledBy: cancelledBy)
                self.colour = colour
            case .exposure(let colour, let exposure, let duration):
                kind = .exposure(kind: exposure, duration: duration.microseconds)
                self.colour = colour
            case .riskAreaPresence(let colour, let areaLevel, let duration):
                kind = .presence(level: areaLevel, duration: duration.microseconds)
                self.colour = colour
            case .symptoms(let colour, let threshold, let duration, let cancelledBy):
                kind = .symptoms(threshold: threshold, duration: duration.microseconds, cancelledBy: cancelledBy)
                self.colour = colour
            }
        }
    }

    /// One interval `[start, end)` on which a rule fires, with the events that make it fire.
    fileprivate struct Firing {
        var rule: Int
        var colour: CodeStatus
        var rank: Int
        var start: Int64
        /// `Int64.max` for no end.
        var end: Int64
        var citeStart: Int
        var citeCount: Int
    }

    /// A place and instant at which the person was, with the area's level then and the designations setting it.
    fileprivate struct Presence {
        var start: Int64
        var stamp: EventStamp
        var level: RiskAreaDesignation.Level
        var designations: (EventStamp?, EventStamp?, EventStamp?)
    }

    /// The working state of one evaluation.
    fileprivate struct Evaluation {
        let person: PersonState
        let areas: RiskAreaMap
        let at: Int64
        let knownAt: Int64
        let policy: Policy
        var retracted: [EventReference] = []
        var firings: [Firing] = []
        var cites: [EventStamp] = []
        var override: (rule: Int, start: Int64, end: Int64, status: CodeStatus, stamp: EventStamp)?

        init(person: PersonState, areas: RiskAreaMap, at: Int64, knownAt: Int64, policy: Policy) {
            self.person = person
            self.areas = areas
            self.at = at
            self.knownAt = knownAt
            self.policy = policy
            for retraction in person.retractions where retraction.stamp.isVisible(at: at, knownAt: knownAt) {
                retracted.append(retraction.target)
            }
            firings.reserveCapacity(8)
            cites.reserveCapacity(8)
        }

        @inline(__always)
        func isVisible(_ stamp: EventStamp) -> Bool {
            guard stamp.isVisible(at: at, knownAt: knownAt) else { return false }
            if retracted.isEmpty { return true }
            return !retracted.contains { $0.id == stamp.id && $0.source == stamp.source }
        }

        /// Opens a firing of `rule` on `[start, start + duration)` (no end for `nil`) and returns whether it was
        /// kept; cite its events with ``cite(_:)`` right after. Intervals over by `at` are dropped: they affect
        /// neither the status at `at` nor any later one.
        mutating func open(rule: Int, start: Int64, duration: Int64?) -> Bool {
            let end = duration.map { start &+ $0 } ?? Int64.max
            guard end > at else { return false }
            let colour = policy.rules[rule].colour
            firings.append(
                Firing(
                    rule: rule,
                    colour: colour,
                    rank: policy.severity[colour.index],
                    start: start,
                    end: end,
                    citeStart: cites.count,
                    citeCount: 0
                )
            )
            return true
        }

        /// Cites an event behind the firing opened last.
        mutating func cite(_ stamp: EventStamp) {
            cites.append(stamp)
            firings[firings.count - 1].citeCount += 1
        }

        mutating func fire() {
            let presences = policy.hasPresenceRules ? presences() : []
            for (index, rule) in policy.rules.enumerated() {
                switch rule.kind {
                case .reviewOverride:
                    if let review = person.reviews.last(where: { isVisible($0.stamp) }) {
                        let start = review.stamp.time.microsecondsSinceEpoch
                        let end = review.validUntil.microsecondsSinceEpoch
                        if end > at { override = (index, start, end, review.status, review.stamp) }
                    }
                case .untilCleared(let test, let clearingTest, let gap):
                    if let (positive, cleared) = clearance(test: test, clearingTest: clearingTest, gap: gap),
                        cleared == nil, open(rule: index, start: positive.time.microsecondsSinceEpoch, duration: nil)
                    {
                        cite(positive)
                    }
                case .recovery(let after, let duration):
                    guard after >= 0,
                        case .untilCleared(let test, let clearingTest, let gap) = policy.rules[after].kind,
                        let (positive, cleared) = clearance(test: test, clearingTest: clearingTest, gap: gap),
                        let (first, second) = cleared,
                        open(rule: index, start: second.time.microsecondsSinceEpoch, duration: duration)
                    else { break }
                    cite(positive)
                    cite(first)
                    cite(second)
                case .window(let test, let duration, let cancelledBy):
                    guard
                        let positive = person.tests.last(where: {
                            $0.test == test && $0.result == .positive && isVisible($0.stamp)
                        })
                    else { break }
                    let start = positive.stamp.time.microsecondsSinceEpoch
                    if let cancelledBy, latestNegative(cancelledBy) > start { break }
                    if open(rule: index, start: start, duration: duration) { cite(positive.stamp) }
                case .exposure(let kind, let duration):
                    for exposure in person.exposures where exposure.kind == kind && isVisible(exposure.stamp) {
                        if open(rule: index, start: exposure.stamp.time.microsecondsSinceEpoch, duration: duration) {
                            cite(exposure.stamp)
                        }
                    }
                case .presence(let level, let duration):
                    for presence in presences
                    where presence.level == level && open(rule: index, start: presence.start, duration: duration) {
                        cite(presence.stamp)
                        let (first, second, third) = presence.designations
                        if let first { cite(first) }
                        if let second { cite(second) }
                        if let third { cite(third) }
                    }
                case .symptoms(let threshold, let duration, let cancelledBy):
                    let cancelAfter = cancelledBy.map { latestNegative($0) } ?? Int64.min
                    for declaration in person.declarations where isVisible(declaration.stamp) {
                        let start = declaration.stamp.time.microsecondsSinceEpoch
                        let fires =
                            !declaration.symptoms.isEmpty || (declaration.temperatureCelsius ?? -1) >= threshold
                        if fires, cancelAfter <= start, open(rule: index, start: start, duration: duration) {
                            cite(declaration.stamp)
                        }
                    }
                }
            }
        }

        /// The time of the latest visible negative test of `method`, or `Int64.min`.
        func latestNegative(_ method: TestResult.Method) -> Int64 {
            person.tests.last { $0.test == method && $0.result == .negative && isVisible($0.stamp) }?
                .stamp.time.microsecondsSinceEpoch ?? Int64.min
        }

        /// The latest visible positive `test` and, if it is cleared, the negatives N1, N2 that clear it: N2 is
        /// the earliest negative `clearingTest` at least `gap` after some negative N1 later than the positive
        /// (taking N1 as the earliest such negative gives the earliest N2).
        func clearance(test: TestResult.Method, clearingTest: TestResult.Method, gap: Int64)
            -> (positive: EventStamp, cleared: (EventStamp, EventStamp)?)?
        {
            let tests = person.tests
            guard let positiveIndex = tests.lastIndex(where: { $0.test == test && $0.result == .positive && isVisible($0.stamp) })
            else { return nil }
            let positive = tests[positiveIndex].stamp
            let positiveTime = positive.time.microsecondsSinceEpoch
            var first: EventStamp?
            for record in tests
            where record.test == clearingTest && record.result == .negative && isVisible(record.stamp) {
                let time = record.stamp.time.microsecondsSinceEpoch
                if let n1 = first {
                    if time - n1.time.microsecondsSinceEpoch >= gap { return (positive, (n1, record.stamp)) }
                } else if time > positiveTime {
                    first = record.stamp
                }
            }
            return (positive, nil)
        }

        /// Presences (POLICY.md §3.1) with the level of their area at their instant (§3.2).
        func presences() -> [Presence] {
            var result: [Presence] = []
            for travel in person.travels where isVisible(travel.stamp) {
                result.append(presence(travel.from, travel.stamp.time.microsecondsSinceEpoch, travel.stamp))
                // The arrival counts from `arrivedAt` on; one after `at` starts a future interval, which
                // matters for `validUntil` but not for the status at `at`.
                result.append(presence(travel.to, travel.arrivedAt.microsecondsSinceEpoch, travel.stamp))
            }
            for declaration in person.declarations where isVisible(declaration.stamp) {
                if let location = declaration.location {
                    result.append(presence(location, declaration.stamp.time.microsecondsSinceEpoch, declaration.stamp))
                }
            }
            return result
        }

        /// The level of `area` at `instant`: the highest of the levels set for the code itself, its city and
        /// its province by their latest effective designation, the lowest level for a code without one; cites
        /// the designations that set the resulting level.
        func presence(_ area: AreaCode, _ instant: Int64, _ stamp: EventStamp) -> Presence {
            var presence = Presence(start: instant, stamp: stamp, level: policy.lowestLevel, designations: (nil, nil, nil))
            var best = 0
            var count = 0
            func consider(_ code: AreaCode) {
                guard let record = areas.designation(for: code, at: instant, visibleAt: at, knownAt: knownAt) else {
                    return
                }
                let rank = policy.levelRank[record.level.index]
                if rank > best || count == 0 && rank == best {
                    best = rank
                    presence.level = record.level
                    presence.designations = (record.stamp, nil, nil)
                    count = 1
                } else if rank == best {
                    if count == 1 { presence.designations.1 = record.stamp } else { presence.designations.2 = record.stamp }
                    count += 1
                }
            }
            consider(area)
            switch area.level {
            case .province:
                break
            case .city:
                consider(area.province)
            case .district:
                if let city = area.city { consider(city) }
                consider(area.province)
            }
            return presence
        }

        /// The status at `instant` (at or after `at`) on the fixed known events.
        func status(at instant: Int64) -> CodeStatus {
            if let override, override.start <= instant, instant < override.end { return override.status }
            var best = -1
            var status = CodeStatus.green
            for firing in firings where firing.start <= instant && instant < firing.end && firing.rank > best {
                best = firing.rank
                status = firing.colour
            }
            return status
        }

        /// The earliest interval boundary after `at` at which the status differs from `status`.
        func validUntil(status: CodeStatus) -> Int64? {
            var boundaries: [Int64] = []
            boundaries.reserveCapacity(firings.count * 2 + 1)
            for firing in firings {
                if firing.start > at { boundaries.append(firing.start) }
                if firing.end > at, firing.end != Int64.max { boundaries.append(firing.end) }
            }
            if let override, override.end > at { boundaries.append(override.end) }
            boundaries.sort()
            var previous = Int64.min
            for boundary in boundaries where boundary != previous {
                previous = boundary
                if self.status(at: boundary) != status { return boundary }
            }
            return nil
        }

        /// Every rule firing at `at`: the override first, then in rule-set order.
        func reasons() -> [CodeReason] {
            var reasons: [CodeReason] = []
            if let override, override.start <= at, at < override.end {
                reasons.append(
                    CodeReason(
                        rule: policy.ruleSet.rules[override.rule].name,
                        colour: override.status,
                        until: Instant(microsecondsSinceEpoch: override.end),
                        events: [override.stamp.reference]
                    )
                )
            }
            var index = 0
            while index < firings.count {
                let rule = firings[index].rule
                var until = Int64.min
                var stamps: [EventStamp] = []
                while index < firings.count, firings[index].rule == rule {
                    let firing = firings[index]
                    if firing.start <= at, at < firing.end {
                        until = max(until, firing.end)
                        stamps += cites[firing.citeStart..<(firing.citeStart + firing.citeCount)]
                    }
                    index += 1
                }
                guard !stamps.isEmpty else { continue }
                stamps.sort(by: EventStamp.precedes)
                var events: [EventReference] = []
                for stamp in stamps where !events.contains(stamp.reference) {
                    events.append(stamp.reference)
                }
                reasons.append(
                    CodeReason(
                        rule: policy.ruleSet.rules[rule].name,
                        colour: policy.rules[rule].colour,
                        until: until == Int64.max ? nil : Instant(microsecondsSinceEpoch: until),
                        events: events
                    )
                )
            }
            return reasons
        }
    }
}

extension CodeStatus {
    fileprivate var index: Int {
        switch self {
        case .green: 0
        case .yellow: 1
        case .red: 2
        }
    }
}

extension RiskAreaDesignation.Level {
    fileprivate var index: Int {
        switch self {
        case .low: 0
        case .medium: 1
        case .high: 2
        }
    }
}
