import Crypto

/// Evaluates persons against a rule set (docs/POLICY.md §3): which rules fire at `at` on the events known at
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
    /// The longest presence rule duration; presences older than that cannot fire, so their area level is
    /// never looked up. `nil` without presence rules.
    private let presenceHorizon: Int64?
    /// The level of an area without an effective designation.
    private let lowestLevel: RiskAreaDesignation.Level
    /// How long after it happened each kind of fact can still make a rule fire (``PersonState/prune(before:for:)``).
    let factLifetimes: FactLifetimes
    /// Names the fact lifetimes that pruning follows (16 hex digits of a SHA-256): policies with the same
    /// signature leave out the same facts, so a state pruned for one answers for the other
    /// (``PersonState/answers(at:for:)``); any other rule set's states are folded anew from the archive.
    public let pruningSignature: String

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
        self.presenceHorizon = rules.compactMap { rule -> Int64? in
            if case .presence(_, let duration) = rule.kind { return duration }
            return nil
        }.max()
        var lifetimes = FactLifetimes(exposure: [:], symptoms: nil, presence: presenceHorizon)
        for rule in rules {
            switch rule.kind {
            case .exposure(let kind, let duration):
                lifetimes.exposure[kind] = max(lifetimes.exposure[kind] ?? duration, duration)
            case .symptoms(_, let duration, _):
                lifetimes.symptoms = max(lifetimes.symptoms ?? duration, duration)
            default:
                break
            }
        }
        self.factLifetimes = lifetimes
        self.pruningSignature = lifetimes.signature
    }

    /// The earliest instant from which an exposure, declaration or journey (by its arrival) can still make a rule
    /// fire at `at` or later: a replay for such evaluations can leave out those before it (docs/POLICY.md §3.7).
    public func relevanceCutoff(at: Instant) -> Instant {
        let longest =
            ([factLifetimes.symptoms, factLifetimes.presence] + factLifetimes.exposure.values.map { $0 })
            .compactMap { $0 }.max() ?? 0
        let (cutoff, overflow) = at.microsecondsSinceEpoch.subtractingReportingOverflow(longest)
        return Instant(microsecondsSinceEpoch: overflow ? Int64.min : cutoff)
    }

    /// The longest a fact of each kind can make a rule fire after it happened; `nil`: no rule uses it.
    struct FactLifetimes: Sendable {
        /// Exposure rules' longest duration by kind of exposure.
        var exposure: [Exposure.Kind: Int64]
        /// Symptoms rules' longest duration.
        var symptoms: Int64?
        /// Presence rules' longest duration.
        var presence: Int64?

        /// `e:<kind>=<µs>,…;s=<µs>;p=<µs>` (`-` where no rule uses a fact), hashed.
        var signature: String {
            let exposures = exposure.sorted { $0.key.rawValue < $1.key.rawValue }
                .map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ",")
            let text = "e:\(exposures);s=\(symptoms.map(String.init) ?? "-");p=\(presence.map(String.init) ?? "-")"
            return SHA256.hash(data: Array(text.utf8)).prefix(8).map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
        }
    }

    /// The reasons (docs/POLICY.md §3.6) of evaluating `person` at `at` as known at `knownAt`, without the
    /// `validUntil` search that ``evaluate(_:areas:at:knownAt:)`` adds: what explanations need at each of many
    /// instants.
    func reasons(_ person: PersonState, areas: RiskAreaMap, at: Instant, knownAt: Instant) -> [CodeReason] {
        var evaluation = Evaluation(
            person: person,
            areas: areas,
            at: at.microsecondsSinceEpoch,
            knownAt: knownAt.microsecondsSinceEpoch,
            policy: self
        )
        evaluation.fire()
        return evaluation.reasons()
    }

    /// Evaluates `person` at `at` as known at `knownAt` (default `at`).
    ///
    /// Only events with `time <= at` and `recordedtime <= knownAt` count, minus those retracted by such
    /// events. `validUntil` (docs/POLICY.md §3.5) is the earliest instant u after `at` at which the status
    /// evaluated at u, as known at the same `knownAt`, differs from the status at `at`, or `nil` if there is
    /// none. An event known at `knownAt` whose `time` lies after `at` counts from its `time` on: an analyst's
    /// "as known today" about a past instant, or, live, an event published ahead of the gateway's clock
    /// within the accepted skew, which ends the code exactly when it happens.
    /// The status ``evaluate(_:areas:at:knownAt:)`` decides, without its reasons or `validUntil`: what counting
    /// a population's transitions needs (``PolicyComparison``), at a fraction of the cost.
    public func status(_ person: PersonState, areas: RiskAreaMap, at: Instant, knownAt: Instant? = nil) -> CodeStatus {
        let at = at.microsecondsSinceEpoch
        let knownAt = (knownAt ?? Instant(microsecondsSinceEpoch: at)).microsecondsSinceEpoch
        var evaluation = Evaluation(person: person, areas: areas, at: at, knownAt: knownAt, policy: self)
        evaluation.fire()
        return evaluation.status(at: at)
    }

    public func evaluate(
        _ person: PersonState,
        areas: RiskAreaMap,
        at: Instant,
        knownAt: Instant? = nil
    )
        -> CodeDecision
    {
        let at = at.microsecondsSinceEpoch
        let knownAt = (knownAt ?? Instant(microsecondsSinceEpoch: at)).microsecondsSinceEpoch
        var evaluation = Evaluation(person: person, areas: areas, at: at, knownAt: knownAt, policy: self)
        evaluation.fire()
        let status = evaluation.status(at: at)
        var validUntil = evaluation.validUntil(status: status)
        // Events known now that happen later change the known set at their `time`: between two such instants
        // the set is fixed, so each stretch is evaluated like the first one, from its start.
        var later: [Int64] = []
        person.appendLaterInstants(after: at, knownAt: knownAt, to: &later)
        areas.appendLaterInstants(after: at, knownAt: knownAt, for: person, to: &later)
        if !later.isEmpty {
            later.sort()
            var previous = Int64.min
            for instant in later where instant != previous {
                previous = instant
                if let end = validUntil, end < instant { break }
                var stretch = Evaluation(person: person, areas: areas, at: instant, knownAt: knownAt, policy: self)
                stretch.fire()
                if stretch.status(at: instant) != status {
                    validUntil = instant
                    break
                }
                validUntil = stretch.validUntil(status: status)
            }
        }
        return CodeDecision(
            status: status,
            validUntil: validUntil.map { Instant(microsecondsSinceEpoch: $0) },
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
                colour = .green  // unused: an override takes the colour of its review
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

    /// An event cited by a firing, by position in the person's state or the area map: resolving to
    /// (`source`, `id`) happens only for the reasons, which keeps string copies off the hot path.
    fileprivate enum Cite {
        case test(Int)
        case travel(Int)
        case declaration(Int)
        case exposure(Int)
        case designation(AreaCode, Int)
    }

    /// A place and instant at which the person was, with the area's level then and the designations setting
    /// it (up to three: the code, its city, its province).
    fileprivate struct Presence {
        var start: Int64
        var source: Cite
        var level: RiskAreaDesignation.Level
        var designations: (Cite?, Cite?, Cite?)
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
        var cites: [Cite] = []
        var override: (rule: Int, start: Int64, end: Int64, status: CodeStatus, review: Int)?

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
            cites.reserveCapacity(16)
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
        mutating func cite(_ cite: Cite) {
            cites.append(cite)
            firings[firings.count - 1].citeCount += 1
        }

        mutating func fire() {
            let presences = policy.presenceHorizon.map { self.presences(horizon: $0) } ?? []
            for (index, rule) in policy.rules.enumerated() {
                switch rule.kind {
                case .reviewOverride:
                    if let review = person.reviews.lastIndex(where: { isVisible($0.stamp) }) {
                        let record = person.reviews[review]
                        let end = record.validUntil.microsecondsSinceEpoch
                        if end > at {
                            override = (index, record.stamp.time.microsecondsSinceEpoch, end, record.status, review)
                        }
                    }
                case .untilCleared(let test, let clearingTest, let gap):
                    if let (positive, cleared) = clearance(test: test, clearingTest: clearingTest, gap: gap),
                        cleared == nil,
                        open(
                            rule: index,
                            start: person.tests[positive].stamp.time.microsecondsSinceEpoch,
                            duration: nil
                        )
                    {
                        cite(.test(positive))
                    }
                case .recovery(let after, let duration):
                    guard after >= 0,
                        case .untilCleared(let test, let clearingTest, let gap) = policy.rules[after].kind,
                        let (positive, cleared) = clearance(test: test, clearingTest: clearingTest, gap: gap),
                        let (first, second) = cleared,
                        open(
                            rule: index,
                            start: person.tests[second].stamp.time.microsecondsSinceEpoch,
                            duration: duration
                        )
                    else { break }
                    cite(.test(positive))
                    cite(.test(first))
                    cite(.test(second))
                case .window(let test, let duration, let cancelledBy):
                    guard
                        let positive = person.tests.lastIndex(where: {
                            $0.test == test && $0.result == .positive && isVisible($0.stamp)
                        })
                    else { break }
                    let start = person.tests[positive].stamp.time.microsecondsSinceEpoch
                    if let cancelledBy, latestNegative(cancelledBy) > start { break }
                    if open(rule: index, start: start, duration: duration) { cite(.test(positive)) }
                case .exposure(let kind, let duration):
                    for (position, exposure) in person.exposures.enumerated()
                    where exposure.kind == kind && isVisible(exposure.stamp) {
                        if open(rule: index, start: exposure.stamp.time.microsecondsSinceEpoch, duration: duration) {
                            cite(.exposure(position))
                        }
                    }
                case .presence(let level, let duration):
                    for presence in presences
                    where presence.level == level && open(rule: index, start: presence.start, duration: duration) {
                        cite(presence.source)
                        let (first, second, third) = presence.designations
                        if let first { cite(first) }
                        if let second { cite(second) }
                        if let third { cite(third) }
                    }
                case .symptoms(let threshold, let duration, let cancelledBy):
                    let cancelAfter = cancelledBy.map { latestNegative($0) } ?? Int64.min
                    for (position, declaration) in person.declarations.enumerated() where isVisible(declaration.stamp) {
                        let start = declaration.stamp.time.microsecondsSinceEpoch
                        let fires =
                            !declaration.symptoms.isEmpty || (declaration.temperatureCelsius ?? -1) >= threshold
                        if fires, cancelAfter <= start, open(rule: index, start: start, duration: duration) {
                            cite(.declaration(position))
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

        /// The latest visible positive `test` and, if it is cleared, the negatives N1, N2 that clear it (as
        /// positions in the person's tests): N2 is the earliest negative `clearingTest` at least `gap` after
        /// some negative N1 later than the positive; taking N1 as the earliest such negative gives the
        /// earliest N2.
        func clearance(
            test: TestResult.Method,
            clearingTest: TestResult.Method,
            gap: Int64
        )
            -> (positive: Int, cleared: (Int, Int)?)?
        {
            let tests = person.tests
            guard
                let positive = tests.lastIndex(where: {
                    $0.test == test && $0.result == .positive && isVisible($0.stamp)
                })
            else { return nil }
            let positiveTime = tests[positive].stamp.time.microsecondsSinceEpoch
            var first: (position: Int, time: Int64)?
            for (position, record) in tests.enumerated()
            where record.test == clearingTest && record.result == .negative && isVisible(record.stamp) {
                let time = record.stamp.time.microsecondsSinceEpoch
                if let n1 = first {
                    if time - n1.time >= gap { return (positive, (n1.position, position)) }
                } else if time > positiveTime {
                    first = (position, time)
                }
            }
            return (positive, nil)
        }

        /// Presences (docs/POLICY.md §3.1) that can still fire at or after `at` (within `horizon` of it), with
        /// the level of their area at their instant (§3.2).
        func presences(horizon: Int64) -> [Presence] {
            var result: [Presence] = []
            let earliest = at &- horizon
            for (position, travel) in person.travels.enumerated() where isVisible(travel.stamp) {
                let departure = travel.stamp.time.microsecondsSinceEpoch
                if departure > earliest { result.append(presence(travel.from, departure, .travel(position))) }
                // The arrival counts from `arrivedAt` on; one after `at` starts a future interval, which
                // matters for `validUntil` but not for the status at `at`.
                let arrival = travel.arrivedAt.microsecondsSinceEpoch
                if arrival > earliest { result.append(presence(travel.to, arrival, .travel(position))) }
            }
            for (position, declaration) in person.declarations.enumerated() where isVisible(declaration.stamp) {
                let time = declaration.stamp.time.microsecondsSinceEpoch
                if let location = declaration.location, time > earliest {
                    result.append(presence(location, time, .declaration(position)))
                }
            }
            return result
        }

        /// The level of `area` at `instant`: the highest of the levels set for the code itself, its city and
        /// its province by their latest effective designation, the lowest level for a code without one; cites
        /// the designations that set the resulting level.
        func presence(_ area: AreaCode, _ instant: Int64, _ source: Cite) -> Presence {
            var presence = Presence(
                start: instant,
                source: source,
                level: policy.lowestLevel,
                designations: (nil, nil, nil)
            )
            var best = 0
            var count = 0
            func consider(_ code: AreaCode) {
                guard let (position, level) = areas.designation(for: code, at: instant, visibleAt: at, knownAt: knownAt)
                else { return }
                let rank = policy.levelRank[level.index]
                if rank > best || count == 0 && rank == best {
                    best = rank
                    presence.level = level
                    presence.designations = (.designation(code, position), nil, nil)
                    count = 1
                } else if rank == best {
                    if count == 1 {
                        presence.designations.1 = .designation(code, position)
                    } else {
                        presence.designations.2 = .designation(code, position)
                    }
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

        /// The earliest interval boundary after `at` at which the status on this evaluation's known events
        /// differs from `status`.
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

        func stamp(_ cite: Cite) -> EventStamp {
            switch cite {
            case .test(let position): person.tests[position].stamp
            case .travel(let position): person.travels[position].stamp
            case .declaration(let position): person.declarations[position].stamp
            case .exposure(let position): person.exposures[position].stamp
            case .designation(let area, let position): areas.stamp(of: area, position)
            }
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
                        events: [person.reviews[override.review].stamp.reference]
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
                        for cite in cites[firing.citeStart..<(firing.citeStart + firing.citeCount)] {
                            stamps.append(stamp(cite))
                        }
                    }
                    index += 1
                }
                guard !stamps.isEmpty else { continue }
                stamps.sort(by: EventStamp.precedes)
                var events: [EventReference] = []
                events.reserveCapacity(stamps.count)
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
