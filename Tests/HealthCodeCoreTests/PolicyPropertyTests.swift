import Foundation
import Testing

@testable import HealthCodeCore

/// Properties over a few hundred seeded random histories, checked against a literal, slow transcription of
/// docs/POLICY.md §3 that works on the raw event list (no fold, no rule set).
@Suite("Policy properties")
struct PolicyPropertyTests {
    static let t0 = instant("2020-04-01T00:00:00Z")
    static let historyCount = 300

    static func histories() -> [[CloudEvent]] {
        var generator = RandomHistory(seed: 20_200_401)
        return (0..<historyCount).map { _ in generator.history() }
    }

    /// Instants around which to evaluate: fixed ones plus the history's own instants (boundaries).
    static func probes(_ events: [CloudEvent], using generator: inout SplitMix64) -> [Instant] {
        var probes = [t0, t0 + day * 10, t0 + day * 25]
        for _ in 0..<3 {
            let event = events[Int(generator.next() % UInt64(events.count))]
            probes.append(event.time)
            probes.append(event.time + day * 14)
        }
        return probes
    }

    @Test func decisionsMatchTheLiteralPolicyAndFoldingIsIncremental() {
        var generator = SplitMix64(seed: 7)
        var checked = 0
        var statuses: [CodeStatus: Int] = [:]
        for events in Self.histories() {
            var history = History()
            for (index, event) in events.enumerated() {
                history.apply(event)
                // Evaluate after some steps too: the state after k events must agree with the first k events.
                guard index == events.count - 1 || generator.next() % 4 == 0 else { continue }
                let prefix = Array(events[...index])
                for at in Self.probes(prefix, using: &generator) {
                    let knownAt =
                        generator.next() % 3 == 0 ? at + Duration.seconds(Int64(generator.next() % 400_000)) : nil
                    let decision = history.evaluate(at: at, knownAt: knownAt)
                    let expected = LiteralPolicy(events: prefix, at: at, knownAt: knownAt ?? at).decision()
                    #expect(decision.status == expected.status, "status at \(at)")
                    #expect(decision.validUntil == expected.validUntil, "validUntil at \(at)")
                    #expect(decision.reasons.map(\.rule) == expected.rules, "reasons at \(at)")
                    statuses[decision.status, default: 0] += 1
                    checked += 1
                }
            }
        }
        #expect(checked > 1000)
        #expect(statuses.count == 3, "the generator reaches every colour: \(statuses)")
    }

    /// docs/POLICY.md §3.5 for `knownAt` later than `at`: the events recorded by `knownAt` but timed after `at`
    /// count from their `time` on, so the first instant at which one changes the status ends the code.
    @Test func validUntilAsKnownLaterMatchesTheLiteralDefinition() {
        var generator = SplitMix64(seed: 17)
        var checked = 0
        var endedByLaterEvent = 0
        for events in Self.histories() {
            let history = History(events)
            for at in Self.probes(events, using: &generator) {
                let knownAt = at + Duration.seconds(Int64(1 + generator.next() % 1_500_000))
                let decision = history.evaluate(at: at, knownAt: knownAt)
                let expected = LiteralPolicy(events: events, at: at, knownAt: knownAt).decision()
                #expect(decision.status == expected.status, "status at \(at) as known at \(knownAt)")
                #expect(decision.validUntil == expected.validUntil, "validUntil at \(at) as known at \(knownAt)")
                let frozen = LiteralPolicy(events: events, at: at, knownAt: knownAt).frozenValidUntil()
                if decision.validUntil != frozen { endedByLaterEvent += 1 }
                checked += 1
            }
        }
        #expect(checked > 1000)
        #expect(endedByLaterEvent > 50, "histories where a later-timed known event decides validUntil")
    }

    /// Live evaluations (`knownAt` = `at` = now) with events published ahead of the gateway's clock: such an
    /// event is recorded before it happens and must end the code at its `time` if it changes the status.
    @Test func eventsTimedAheadOfTheirRecordingEndTheLiveCode() {
        var generator = SplitMix64(seed: 19)
        var ended = 0
        for events in Self.histories() {
            let history = History(events)
            for event in events where (event.recordedTime ?? event.time) < event.time {
                let now = event.recordedTime! + Duration.seconds(Int64(generator.next() % 60))
                guard now < event.time else { continue }
                let decision = history.evaluate(at: now)
                let expected = LiteralPolicy(events: events, at: now, knownAt: now).decision()
                #expect(decision.status == expected.status)
                #expect(decision.validUntil == expected.validUntil)
                if let validUntil = decision.validUntil, validUntil <= event.time { ended += 1 }
            }
        }
        #expect(ended > 20)
    }

    @Test func resultAndStateAreIndependentOfInputOrder() throws {
        var generator = SplitMix64(seed: 11)
        for events in Self.histories() {
            let inOrder = History(events)
            let shuffled = History(events.shuffled(using: &generator))
            let reversed = History(events.reversed())
            #expect(shuffled.person == inOrder.person)
            #expect(reversed.areas == inOrder.areas)
            for at in Self.probes(events, using: &generator) {
                let decision = inOrder.evaluate(at: at)
                #expect(shuffled.evaluate(at: at) == decision)
                #expect(reversed.evaluate(at: at) == decision)
            }
        }
    }

    @Test func validUntilIsExact() {
        var generator = SplitMix64(seed: 13)
        var changes = 0
        for events in Self.histories() {
            let history = History(events)
            for at in Self.probes(events, using: &generator) {
                let decision = history.evaluate(at: at)
                guard let validUntil = decision.validUntil else { continue }
                changes += 1
                #expect(validUntil > at)
                // knownAt stays at `at`, as docs/POLICY.md §3.5 defines validUntil.
                #expect(history.evaluate(at: validUntil, knownAt: at).status != decision.status)
                #expect(history.evaluate(at: validUntil - .microseconds(1), knownAt: at).status == decision.status)
                if validUntil - second >= at {
                    #expect(history.evaluate(at: validUntil - second, knownAt: at).status == decision.status)
                }
                // The same holds as known at any later instant.
                let knownAt = at + Duration.seconds(Int64(generator.next() % 1_500_000))
                let later = history.evaluate(at: at, knownAt: knownAt)
                if let end = later.validUntil {
                    #expect(history.evaluate(at: end, knownAt: knownAt).status != later.status)
                    #expect(history.evaluate(at: end - .microseconds(1), knownAt: knownAt).status == later.status)
                }
            }
        }
        #expect(changes > 300)
    }

    @Test func reapplyingAnEventChangesNothing() {
        for events in Self.histories().prefix(50) {
            var history = History(events)
            let before = history
            for event in events {
                let changed = event.isPersonEvent ? history.person.apply(event) : history.areas.apply(event)
                #expect(!changed)
            }
            #expect(history.person == before.person)
            #expect(history.areas == before.areas)
        }
    }
}

/// Random histories of one person around 2020-04-01 on a coarse time grid, so that ties and exact
/// boundaries (24 h, 7 d, 14 d) are frequent. Some events are recorded late (up to 60 hours), some before they
/// happen (published up to 5 minutes ahead of the gateway's clock, within its accepted skew).
struct RandomHistory {
    var generator: SplitMix64
    let areas = ["440000", "440100", "440106", "440103", "420106", "110000"]
    let sources = ["urn:a", "urn:b"]

    init(seed: UInt64) {
        generator = SplitMix64(seed: seed)
    }

    mutating func below(_ bound: Int) -> Int { Int(generator.next() % UInt64(bound)) }

    /// A grid instant: multiples of 12 hours over 30 days from 2020-03-20, sometimes nudged by a second.
    mutating func time() -> Instant {
        var value = PolicyPropertyTests.t0 - day * 12 + Duration.seconds(Int64(below(60)) * 43_200)
        if below(8) == 0 { value = value + Duration.seconds(below(2) == 0 ? 1 : -1) }
        return value
    }

    mutating func history() -> [CloudEvent] {
        var events: [CloudEvent] = []
        let count = 4 + below(22)
        for index in 0..<count {
            let time = time()
            let source = sources[below(2)]
            let id = "e\(below(3))\(index)"
            let payload: EventPayload
            var subject = "p-1"
            switch below(11) {
            case 0, 1:
                payload = .testResult(
                    TestResult(test: .pcr, result: below(3) == 0 ? .positive : .negative, lab: "l")
                )
            case 2:
                payload = .testResult(
                    TestResult(test: .antigen, result: below(2) == 0 ? .positive : .negative, lab: "l")
                )
            case 3:
                payload = .exposure(Exposure(kind: below(2) == 0 ? .closeContact : .secondaryContact))
            case 4:
                payload = .travel(
                    Travel(
                        mode: .car,
                        from: area(areas[below(areas.count)]),
                        to: area(areas[below(areas.count)]),
                        arrivedAt: time + Duration.seconds(Int64(below(5)) * 43_200)
                    )
                )
            case 5:
                let symptoms: [Declaration.Symptom] = below(3) == 0 ? [.cough] : []
                let temperatures: [Double?] = [nil, 36.5, 37.2, 37.3, 38]
                payload = .declaration(
                    Declaration(
                        symptoms: symptoms,
                        temperatureCelsius: temperatures[below(temperatures.count)],
                        location: below(2) == 0 ? area(areas[below(areas.count)]) : nil
                    )
                )
            case 6:
                let statuses: [CodeStatus] = [.green, .yellow, .red]
                payload = .review(
                    Review(
                        status: statuses[below(3)],
                        validUntil: time + Duration.seconds(Int64(1 + below(20)) * 43_200),
                        reason: "r",
                        officer: "o"
                    )
                )
            case 7, 8:
                let levels: [RiskAreaDesignation.Level] = [.low, .medium, .high]
                let from = time - Duration.seconds(Int64(below(4)) * 43_200)
                payload = .riskArea(
                    RiskAreaDesignation(
                        level: levels[below(3)],
                        effectiveFrom: from,
                        effectiveUntil: below(2) == 0 ? nil : from + Duration.seconds(Int64(1 + below(20)) * 43_200)
                    )
                )
                subject = areas[below(areas.count)]
            default:
                guard let target = events.isEmpty ? nil : events[below(events.count)] else { continue }
                payload = .retraction(Retraction(retracts: target.id, reason: "r"))
                subject = target.subject
            }
            let recorded: Instant? =
                switch below(6) {
                case 0, 1: time + Duration.seconds(Int64(below(6)) * 43_200)
                case 2: time - Duration.seconds(Int64(1 + below(300)))
                default: nil
                }
            let event = CloudEvent(
                id: id,
                source: source,
                subject: subject,
                time: time,
                recordedTime: recorded,
                payload: payload
            )
            guard !events.contains(where: { $0.reference == event.reference }) else { continue }
            events.append(event)
            if below(10) == 0 { events.append(event) }  // a publisher retry
        }
        if events.isEmpty {
            events.append(
                CloudEvent(
                    id: "only",
                    source: "urn:a",
                    subject: "p-1",
                    time: PolicyPropertyTests.t0,
                    payload: .exposure(Exposure(kind: .closeContact))
                )
            )
        }
        return events
    }
}

/// docs/POLICY.md §3 transcribed literally over a list of events, with the reference rule set's values written
/// in. Deliberately naive: no fold, no indexes, validUntil found by evaluating anew (§3.0–4 at u, as known at
/// the same `knownAt`) at every instant at which any rule can start or stop or any known event starts to count.
struct LiteralPolicy {
    let all: [CloudEvent]
    let known: [CloudEvent]
    let at: Instant
    let knownAt: Instant

    init(events: [CloudEvent], at: Instant, knownAt: Instant) {
        all = events
        self.knownAt = knownAt
        var seen = Set<EventReference>()
        let visible = events.filter {
            $0.time <= at && ($0.recordedTime ?? $0.time) <= knownAt && seen.insert($0.reference).inserted
        }
        let retracted = Set(
            visible.compactMap { event -> EventReference? in
                guard case .retraction(let retraction) = event.payload else { return nil }
                return EventReference(source: event.source, id: retraction.retracts)
            }
        )
        known = visible.filter { !retracted.contains($0.reference) }
        self.at = at
    }

    static func isLater(_ a: CloudEvent, than b: CloudEvent) -> Bool {
        if a.time != b.time { return a.time > b.time }
        if a.id != b.id { return a.id > b.id }
        return a.source > b.source
    }

    func latest(_ predicate: (CloudEvent) -> Bool) -> CloudEvent? {
        known.filter(predicate).reduce(nil) { best, event in
            best.map { Self.isLater(event, than: $0) ? event : $0 } ?? event
        }
    }

    func tests(_ method: TestResult.Method, _ outcome: TestResult.Outcome) -> [CloudEvent] {
        known.filter {
            if case .testResult(let test) = $0.payload { return test.test == method && test.result == outcome }
            return false
        }
    }

    func levelRank(_ level: RiskAreaDesignation.Level) -> Int {
        switch level {
        case .low: 0
        case .medium: 1
        case .high: 2
        }
    }

    func level(of area: AreaCode, at t: Instant) -> RiskAreaDesignation.Level {
        var best = RiskAreaDesignation.Level.low
        for code in [area] + area.ancestors {
            let designation = latest { event in
                guard case .riskArea(let d) = event.payload, event.subject == code.description else { return false }
                return d.effectiveFrom <= t && (d.effectiveUntil.map { t < $0 } ?? true)
            }
            if case .riskArea(let d)? = designation?.payload, levelRank(d.level) > levelRank(best) { best = d.level }
        }
        return best
    }

    /// Firing rules (name, colour) at `u`, and the active review's status.
    func firing(at u: Instant) -> (rules: [(String, CodeStatus)], review: CodeStatus?) {
        var rules: [(String, CodeStatus)] = []
        let negativePCRs = tests(.pcr, .negative)
        if let p = latest({ event in tests(.pcr, .positive).contains(event) }) {
            let clearances = negativePCRs.filter { n2 in
                n2.time <= u
                    && negativePCRs.contains { n1 in n1 != n2 && p.time < n1.time && n2.time - n1.time >= hour * 24 }
            }
            if let c = clearances.map(\.time).min() {
                if c <= u, u < c + day * 14 { rules.append(("recovery-observation", .yellow)) }
            } else {
                rules.append(("positive-pcr", .red))
            }
        }
        if let a = latest({ event in tests(.antigen, .positive).contains(event) }),
            a.time <= u, u < a.time + day * 14,
            !negativePCRs.contains(where: { $0.time > a.time && $0.time <= u })
        {
            rules.append(("positive-antigen", .yellow))
        }
        for (kind, name, colour, length) in [
            (Exposure.Kind.closeContact, "close-contact", CodeStatus.red, day * 14),
            (.secondaryContact, "secondary-contact", .yellow, day * 7),
        ] {
            let fires = known.contains { event in
                guard case .exposure(let exposure) = event.payload, exposure.kind == kind else { return false }
                return event.time <= u && u < event.time + length
            }
            if fires { rules.append((name, colour)) }
        }
        var presences: [(AreaCode, Instant)] = []
        for event in known {
            switch event.payload {
            case .travel(let travel):
                presences.append((travel.from, event.time))
                if travel.arrivedAt <= u { presences.append((travel.to, travel.arrivedAt)) }
            case .declaration(let declaration):
                if let location = declaration.location { presences.append((location, event.time)) }
            default:
                break
            }
        }
        for (level, name, length) in [
            (RiskAreaDesignation.Level.high, "high-risk-presence", day * 14),
            (.medium, "medium-risk-presence", day * 7),
        ] where presences.contains(where: { $0.1 <= u && u < $0.1 + length && self.level(of: $0.0, at: $0.1) == level })
        {
            rules.append((name, .yellow))
        }
        let symptomatic = known.contains { event in
            guard case .declaration(let d) = event.payload else { return false }
            return (!d.symptoms.isEmpty || (d.temperatureCelsius ?? 0) >= 37.3) && event.time <= u
                && u < event.time + day * 14 && !negativePCRs.contains { $0.time > event.time && $0.time <= u }
        }
        if symptomatic { rules.append(("symptoms", .yellow)) }
        var review: CodeStatus?
        if let r = latest({ if case .review = $0.payload { return true } else { return false } }),
            case .review(let data) = r.payload, r.time <= u, u < data.validUntil
        {
            review = data.status
        }
        return (rules, review)
    }

    func status(at u: Instant) -> CodeStatus {
        let (rules, review) = firing(at: u)
        return review ?? rules.map(\.1).max() ?? .green
    }

    /// Every instant after `at` at which the status can change: when an event known at `knownAt` happens,
    /// and every instant a rule can start or stop on such events.
    func candidates(among events: [CloudEvent]) -> [Instant] {
        var candidates = Set<Instant>()
        for event in events {
            var instants = [event.time]
            switch event.payload {
            case .travel(let travel): instants.append(travel.arrivedAt)
            case .review(let review): instants.append(review.validUntil)
            default: break
            }
            for instant in instants {
                for offset in [Duration.zero, day * 7, day * 14] where instant + offset > at {
                    candidates.insert(instant + offset)
                }
            }
        }
        return candidates.sorted()
    }

    /// The first instant after `at` at which the status differs on the events that count at `at` alone: the
    /// definition before docs/POLICY.md §3.5 spelt out later-timed events; tests use it to show that they matter.
    func frozenValidUntil() -> Instant? {
        let status = status(at: at)
        return candidates(among: known).first { self.status(at: $0) != status }
    }

    func decision() -> (status: CodeStatus, validUntil: Instant?, rules: [String]) {
        let status = status(at: at)
        let recorded = all.filter { ($0.recordedTime ?? $0.time) <= knownAt }
        let validUntil = candidates(among: recorded).first { u in
            LiteralPolicy(events: all, at: u, knownAt: knownAt).status(at: u) != status
        }
        let order = [
            "positive-pcr", "recovery-observation", "positive-antigen", "close-contact", "secondary-contact",
            "high-risk-presence", "medium-risk-presence", "symptoms",
        ]
        let (rules, review) = firing(at: at)
        let names = rules.map(\.0).sorted { order.firstIndex(of: $0)! < order.firstIndex(of: $1)! }
        return (status, validUntil, (review == nil ? [] : ["review"]) + names)
    }
}
