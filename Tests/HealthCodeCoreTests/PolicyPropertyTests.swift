import Foundation
import HealthCodeTestSupport
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
                    let status = Repository.referencePolicy.status(
                        history.person,
                        areas: history.areas,
                        at: at,
                        knownAt: knownAt
                    )
                    #expect(status == decision.status, "status alone at \(at)")
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
