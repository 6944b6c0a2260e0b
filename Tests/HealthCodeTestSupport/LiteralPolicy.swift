import HealthCodeCore

/// docs/POLICY.md §3 transcribed literally over a list of events, with the reference rule set's values written
/// in. Deliberately naive: no fold, no indexes, validUntil found by evaluating anew (§3.0–4 at u, as known at
/// the same `knownAt`) at every instant at which any rule can start or stop or any known event starts to count.
public struct LiteralPolicy: Sendable {
    let all: [CloudEvent]
    let known: [CloudEvent]
    let at: Instant
    let knownAt: Instant
    private static let hour: Duration = .seconds(3600)
    private static let day: Duration = .seconds(86_400)

    /// The policy over `events` (a person's and the designations), at `at` as known at `knownAt`.
    public init(events: [CloudEvent], at: Instant, knownAt: Instant) {
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
                    && negativePCRs.contains { n1 in n1 != n2 && p.time < n1.time && n2.time - n1.time >= Self.hour * 24
                    }
            }
            if let c = clearances.map(\.time).min() {
                if c <= u, u < c + Self.day * 14 { rules.append(("recovery-observation", .yellow)) }
            } else {
                rules.append(("positive-pcr", .red))
            }
        }
        if let a = latest({ event in tests(.antigen, .positive).contains(event) }),
            a.time <= u, u < a.time + Self.day * 14,
            !negativePCRs.contains(where: { $0.time > a.time && $0.time <= u })
        {
            rules.append(("positive-antigen", .yellow))
        }
        for (kind, name, colour, length) in [
            (Exposure.Kind.closeContact, "close-contact", CodeStatus.red, Self.day * 14),
            (.secondaryContact, "secondary-contact", .yellow, Self.day * 7),
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
            (RiskAreaDesignation.Level.high, "high-risk-presence", Self.day * 14),
            (.medium, "medium-risk-presence", Self.day * 7),
        ] where presences.contains(where: { $0.1 <= u && u < $0.1 + length && self.level(of: $0.0, at: $0.1) == level })
        {
            rules.append((name, .yellow))
        }
        let symptomatic = known.contains { event in
            guard case .declaration(let d) = event.payload else { return false }
            return (!d.symptoms.isEmpty || (d.temperatureCelsius ?? 0) >= 37.3) && event.time <= u
                && u < event.time + Self.day * 14 && !negativePCRs.contains { $0.time > event.time && $0.time <= u }
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
                for offset in [Duration.zero, Self.day * 7, Self.day * 14] where instant + offset > at {
                    candidates.insert(instant + offset)
                }
            }
        }
        return candidates.sorted()
    }

    /// The first instant after `at` at which the status differs on the events that count at `at` alone: the
    /// definition before docs/POLICY.md §3.5 spelt out later-timed events; tests use it to show that they matter.
    public func frozenValidUntil() -> Instant? {
        let status = status(at: at)
        return candidates(among: known).first { self.status(at: $0) != status }
    }

    /// The status, `validUntil` and the names of the firing rules (the override first), per docs/POLICY.md §3.
    public func decision() -> (status: CodeStatus, validUntil: Instant?, rules: [String]) {
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
