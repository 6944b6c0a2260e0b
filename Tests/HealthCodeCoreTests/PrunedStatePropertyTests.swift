import Foundation
import HealthCodeTestSupport
import Testing

@testable import HealthCodeCore

/// A pruned state (PersonState.prune) answers every evaluation from its horizon on exactly as the whole history
/// does, for any `knownAt`, whatever arrives after the prune and however often it was pruned on the way.
@Suite("Pruned states")
struct PrunedStatePropertyTests {
    static let day = Duration.seconds(86_400)

    /// Horizons across and beyond the random histories (which span about four weeks from t0).
    static func horizons(using generator: inout SplitMix64) -> [Instant] {
        let t0 = PolicyPropertyTests.t0
        return [t0 + day * 5, t0 + day * 16, t0 + day * 30, t0 + Duration.seconds(Int64(generator.next() % 3_000_000))]
    }

    /// Instants at and after `horizon` to evaluate at: the horizon itself, the history's instants after it,
    /// and instants a little and far later.
    static func instants(from horizon: Instant, _ events: [CloudEvent], using generator: inout SplitMix64) -> [Instant]
    {
        var instants = [horizon, horizon + day, horizon + day * 14, horizon + Duration.seconds(1)]
        for event in events where event.time >= horizon { instants.append(event.time) }
        instants.append(horizon + Duration.seconds(Int64(generator.next() % 2_000_000)))
        return instants
    }

    @Test("a pruned state evaluates as the whole history at every instant from its horizon on, for any knownAt")
    func prunedStatesEvaluateAsTheWholeHistory() {
        var generator = SplitMix64(seed: 2022)
        var checked = 0
        var prunedEvents = 0
        var firing = 0
        for events in PolicyPropertyTests.histories() {
            let history = History(events)
            for horizon in Self.horizons(using: &generator) {
                var pruned = history
                pruned.person.prune(before: horizon, for: Repository.referencePolicy)
                #expect(pruned.person.eventCount == history.person.eventCount)
                prunedEvents += history.person.heldEventCount - pruned.person.heldEventCount
                #expect(pruned.person.answers(at: horizon, for: Repository.referencePolicy))
                #expect(!pruned.person.answers(at: horizon - Duration.seconds(1), for: Repository.referencePolicy))
                for at in Self.instants(from: horizon, events, using: &generator) {
                    // Known at the same instant, later (events timed after `at`), and earlier than the horizon.
                    let knownAts: [Instant?] = [
                        nil, at + Duration.seconds(Int64(generator.next() % 1_500_000)),
                        horizon - Duration.seconds(Int64(generator.next() % 1_500_000)),
                    ]
                    for knownAt in knownAts {
                        let whole = history.evaluate(at: at, knownAt: knownAt)
                        #expect(
                            pruned.evaluate(at: at, knownAt: knownAt) == whole,
                            "at \(at) known at \(knownAt.map { "\($0)" } ?? "at")"
                        )
                        if !whole.reasons.isEmpty { firing += 1 }
                        checked += 1
                    }
                }
            }
        }
        #expect(checked > 5000)
        #expect(prunedEvents > 1000, "the histories have facts to leave out")
        #expect(firing > 1000, "the comparisons include firing rules")
    }

    /// The reference rule set with every 14-day duration made 28 days: it needs facts the reference policy leaves
    /// out.
    static let longerPolicy: Policy = {
        let text = String(decoding: try! Repository.bytes("projections/rules/reference-v1.json"), as: UTF8.self)
            .replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
            .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"")
        return Policy(ruleSet: try! RuleSet.decode(Array(text.utf8)))
    }()

    @Test(
        "a state pruned for one rule set does not answer for one that keeps facts longer; folded anew from the archive's relevant events it evaluates as the whole history"
    )
    func anotherRuleSetFoldsAnew() {
        let reference = Repository.referencePolicy
        let longer = Self.longerPolicy
        #expect(reference.pruningSignature != longer.pruningSignature)
        #expect(reference.pruningSignature == Policy(ruleSet: Repository.referenceRuleSet).pruningSignature)
        var generator = SplitMix64(seed: 1922)
        var differed = 0
        var checked = 0
        for events in PolicyPropertyTests.histories() {
            let history = History(events)
            var archived = Set<EventReference>()
            let personEvents = events.filter { $0.isPersonEvent && archived.insert($0.reference).inserted }
            for horizon in Self.horizons(using: &generator) {
                var pruned = history
                pruned.person.prune(before: horizon, for: reference)
                #expect(!pruned.person.answers(at: horizon, for: longer))
                // A state pruned for the reference policy is not pruned again for another one.
                var again = pruned.person
                again.prune(before: horizon + Self.day, for: longer)
                #expect(again == pruned.person)
                // What the projector and the API do instead: fold the events that can matter anew.
                let cutoff = longer.relevanceCutoff(at: horizon)
                let relevant = personEvents.filter { event in
                    switch event.payload {
                    case .exposure, .declaration: return event.time >= cutoff
                    case .travel(let travel): return event.time >= cutoff || travel.arrivedAt >= cutoff
                    default: return true
                    }
                }
                let refolded = PersonState(
                    relevant: relevant,
                    leftOut: personEvents.count - relevant.count,
                    prunedBefore: horizon,
                    for: longer
                )
                #expect(refolded.answers(at: horizon, for: longer))
                #expect(refolded.eventCount == history.person.eventCount)
                for at in Self.instants(from: horizon, events, using: &generator) {
                    let whole = history.evaluate(at: at, policy: longer)
                    #expect(longer.evaluate(refolded, areas: history.areas, at: at) == whole, "at \(at)")
                    if pruned.evaluate(at: at, policy: longer) != whole { differed += 1 }
                    checked += 1
                }
            }
        }
        #expect(checked > 1000)
        #expect(differed > 0, "the stale pruned state would have answered wrongly: the test exercises the guard")
    }

    /// Horizons mostly rise, and now and then one is behind the last: a projector transaction that read its clock,
    /// then waited for a lock while a rebuild's switch folded the same person at a later instant (or another
    /// process's clock). What arrives then is left out at the state's own horizon at once.
    @Test("pruning after every event, at horizons that mostly rise, gives the state pruned once at the last horizon")
    func incrementalPruningMatchesPruningOnce() throws {
        var generator = SplitMix64(seed: 99)
        var behind = 0
        for events in PolicyPropertyTests.histories() {
            var incremental = PersonState()
            var horizon = PolicyPropertyTests.t0
            // As the projector gets them: each (source, id) once (the archive drops retries), pruned after
            // each batch at its clock's horizon.
            var archived = Set<EventReference>()
            for event in events where event.isPersonEvent && archived.insert(event.reference).inserted {
                incremental.apply(event)
                if generator.next() % 3 == 0 { horizon = horizon + Duration.seconds(Int64(generator.next() % 400_000)) }
                var batchHorizon = horizon
                if generator.next() % 5 == 0 {
                    batchHorizon = horizon - Duration.seconds(Int64(generator.next() % 2_000_000))
                    behind += 1
                }
                incremental.prune(before: batchHorizon, for: Repository.referencePolicy)
                // What the projector stores and reads back between batches.
                incremental = try PersonState(storedJSON: incremental.storedJSON())
            }
            var once = History(events).person
            if let last = incremental.prunedBefore { once.prune(before: last, for: Repository.referencePolicy) }
            #expect(incremental == once)
            #expect(incremental.eventCount == once.eventCount)
        }
        #expect(behind > 100)
    }

    @Test("rising evaluations (explanations) give the whole history's reasons at every instant, for any knownAt")
    func risingEvaluationsGiveTheWholeHistorysReasons() {
        var generator = SplitMix64(seed: 5)
        var checked = 0
        var firing = 0
        for events in PolicyPropertyTests.histories() {
            let history = History(events)
            // As archived: each (source, id) once.
            var archived = Set<EventReference>()
            let personEvents = events.filter { $0.isPersonEvent && archived.insert($0.reference).inserted }
            var rising = RisingEvaluation(
                events: personEvents,
                policy: Repository.referencePolicy,
                areas: history.areas
            )
            let instants = Set(events.map(\.time) + PolicyPropertyTests.probes(events, using: &generator)).sorted()
            let knownAt = instants[Int(generator.next() % UInt64(instants.count))]
            for at in instants {
                let reasons = rising.reasons(at: at, knownAt: knownAt)
                #expect(reasons == history.evaluate(at: at, knownAt: knownAt).reasons, "at \(at) known at \(knownAt)")
                if !reasons.isEmpty { firing += 1 }
                checked += 1
            }
        }
        #expect(checked > 3000)
        #expect(firing > 1000)
    }

    @Test("a year of daily journeys keeps two weeks of them; its stored state stays small")
    func longHistoriesStaySmall() throws {
        let start = PolicyPropertyTests.t0
        var state = PersonState()
        var full = PersonState()
        for day in 0..<365 {
            let time = start + Self.day * day
            let event = CloudEvent(
                id: "travel-\(day)",
                source: "urn:hc:publisher:test-transport",
                subject: String(repeating: "a", count: 32),
                time: time,
                payload: .travel(
                    Travel(
                        mode: .train,
                        from: AreaCode("110101")!,
                        to: AreaCode("310104")!,
                        arrivedAt: time + .seconds(3600)
                    )
                )
            )
            state.apply(event)
            full.apply(event)
            state.prune(before: time - .seconds(3600), for: Repository.referencePolicy)
        }
        #expect(state.eventCount == 365)
        #expect(state.heldEventCount <= 16)
        #expect(state.storedJSON().count < 2_000)
        #expect(try PersonState(storedJSON: state.storedJSON()) == state)
        let now = start + Self.day * 364
        let areas = RiskAreaMap()
        #expect(
            Repository.referencePolicy.evaluate(state, areas: areas, at: now)
                == Repository.referencePolicy.evaluate(full, areas: areas, at: now)
        )
    }

    @Test("the compact layout takes little over half the bytes and reads back equal, instants beyond 2^53 µs too")
    func compactLayoutRoundTrips() throws {
        let earlier = try PersonState(storedJSON: Array(StoredJSONTests.earlierState.utf8))
        let compact = earlier.storedJSON()
        #expect(compact.count * 10 < StoredJSONTests.earlierState.utf8.count * 6)
        #expect(try PersonState(storedJSON: compact) == earlier)
        var far = PersonState()
        far.apply(
            CloudEvent(
                id: "far",
                source: "urn:hc:publisher:test-cdc",
                subject: String(repeating: "a", count: 32),
                time: Instant(rfc3339: "9999-12-31T23:59:59.999999Z")!,
                payload: .exposure(Exposure(kind: .closeContact))
            )
        )
        #expect(try PersonState(storedJSON: far.storedJSON()) == far)
    }
}
