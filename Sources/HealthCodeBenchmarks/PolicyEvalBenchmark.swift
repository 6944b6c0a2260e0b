import Foundation
import HealthCodeCore

/// Measures person evaluations per second on one core: typical 20-event histories (tests, travel through
/// designated areas, declarations, contacts, the odd review and retraction), each evaluated with `validUntil`
/// against a shared risk-area map. A baseline measured in the same run, decoding and chronologically
/// sorting the same histories from their JSON, puts the number in proportion.
public enum PolicyEvalBenchmark {
    /// The outcome of one run.
    public struct Report: Sendable {
        public var persons: Int
        public var eventsPerPerson: Int
        public var evaluationsPerSecond: Double
        /// Histories decoded from JSON and sorted per second: the least work any evaluator of raw events does.
        public var baselineHistoriesPerSecond: Double
    }

    /// Generates the histories, then times evaluation and the baseline for about `seconds` each on the
    /// calling thread. `log` receives human-readable lines; the last one is the required summary line.
    @discardableResult
    public static func run(
        ruleSet: RuleSet,
        persons: Int = 10_000,
        seconds: Double = 3,
        seed: UInt64 = 42,
        log: (String) -> Void
    ) -> Report {
        let at = Instant(rfc3339: "2020-04-03T12:00:00Z")!
        var generator = HistoryGenerator(seed: seed, at: at)
        let designations = generator.designations()
        var areas = RiskAreaMap()
        for event in designations { areas.apply(event) }
        var histories: [[CloudEvent]] = []
        var states: [PersonState] = []
        for index in 0..<persons {
            let history = generator.history(person: index)
            var state = PersonState()
            for event in history { state.apply(event) }
            histories.append(history)
            states.append(state)
        }
        let eventsPerPerson = histories.map(\.count).reduce(0, +) / max(persons, 1)
        log("bench policy-eval: \(persons) persons, \(eventsPerPerson) events each, \(designations.count) designations")

        let policy = Policy(ruleSet: ruleSet)
        var checksum = 0
        let evaluations = timed(seconds: seconds) {
            for state in states {
                let decision = policy.evaluate(state, areas: areas, at: at)
                checksum &+= decision.reasons.count &+ (decision.validUntil == nil ? 0 : 1)
            }
            return states.count
        }
        let encoded = histories.map { history in history.map { $0.jsonBytes() } }
        let baseline = timed(seconds: seconds) {
            for history in encoded {
                var events: [CloudEvent] = []
                events.reserveCapacity(history.count)
                for bytes in history {
                    if let event = try? EventDecoder.decode(bytes) { events.append(event) }
                }
                events.sort { ($0.time, $0.id) < ($1.time, $1.id) }
                checksum &+= events.count
            }
            return encoded.count
        }
        log("bench policy-eval: baseline (decode + sort the same histories): \(Int(baseline)) histories/s on 1 core")
        log(
            "bench policy-eval: evaluation / baseline = \(String(format: "%.1f", evaluations / baseline))x (checksum \(checksum))"
        )
        log("bench policy-eval: \(Int(evaluations)) evals/s on 1 core")
        return Report(
            persons: persons,
            eventsPerPerson: eventsPerPerson,
            evaluationsPerSecond: evaluations,
            baselineHistoriesPerSecond: baseline
        )
    }

    /// Repeats `round` (which returns how many operations it did) for about `seconds`; operations per second.
    private static func timed(seconds: Double, _ round: () -> Int) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        var operations = 0
        var elapsed = Duration.zero
        repeat {
            operations += round()
            elapsed = clock.now - start
        } while elapsed < .seconds(seconds)
        let parts = elapsed.components
        return Double(operations) / (Double(parts.seconds) + Double(parts.attoseconds) * 1e-18)
    }
}

/// Seeded synthetic histories over the 30 days before `at` (SplitMix64, so runs are reproducible).
struct HistoryGenerator {
    private var state: UInt64
    private let at: Instant
    static let areas = [
        "440106", "440103", "440100", "440000", "420106", "420100", "110105", "110000", "310115", "330106",
    ].compactMap(AreaCode.init)

    init(seed: UInt64, at: Instant) {
        self.state = seed
        self.at = at
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// An instant within the 30 days before `at`, whole seconds.
    mutating func recent() -> Instant { at - .seconds(1 + below(30 * 86_400)) }

    mutating func area() -> AreaCode { Self.areas[below(Self.areas.count)] }

    /// A few designations per area, some bounded, some superseding earlier ones.
    mutating func designations() -> [CloudEvent] {
        var events: [CloudEvent] = []
        for (index, area) in Self.areas.enumerated() {
            for round in 0..<3 {
                let issued = recent()
                let levels: [RiskAreaDesignation.Level] = [.low, .medium, .high]
                let until: Instant? = below(2) == 0 ? nil : issued + .seconds(86_400 * (3 + below(10)))
                events.append(
                    CloudEvent(
                        id: "risk-\(index)-\(round)",
                        source: "urn:hc:publisher:bench-bureau",
                        subject: area.description,
                        time: issued,
                        payload: .riskArea(
                            RiskAreaDesignation(level: levels[below(3)], effectiveFrom: issued, effectiveUntil: until)
                        )
                    )
                )
            }
        }
        return events
    }

    /// 20 events: 5 tests, 5 travels, 5 declarations, 3 exposures, a review or a retraction now and then.
    mutating func history(person: Int) -> [CloudEvent] {
        let subject = "bench-person-\(person)"
        let source = "urn:hc:publisher:bench"
        var events: [CloudEvent] = []
        func add(_ payload: EventPayload, _ time: Instant) {
            events.append(
                CloudEvent(
                    id: "\(person)-\(events.count)",
                    source: source,
                    subject: subject,
                    time: time,
                    payload: payload
                )
            )
        }
        for _ in 0..<5 {
            let positive = below(10) == 0
            add(
                .testResult(
                    TestResult(
                        test: below(2) == 0 ? .pcr : .antigen,
                        result: positive ? .positive : .negative,
                        lab: "lab"
                    )
                ),
                recent()
            )
        }
        for _ in 0..<5 {
            let departure = recent()
            let arrival = departure + .seconds(3600 * (1 + below(8)))
            add(.travel(Travel(mode: .train, from: area(), to: area(), arrivedAt: arrival)), departure)
        }
        let symptoms: [Declaration.Symptom] = [.fever, .cough, .fatigue]
        for _ in 0..<5 {
            let symptomatic = below(8) == 0
            add(
                .declaration(
                    Declaration(
                        symptoms: symptomatic ? [symptoms[below(3)]] : [],
                        temperatureCelsius: 36 + Double(below(25)) / 10,
                        location: area()
                    )
                ),
                recent()
            )
        }
        for _ in 0..<3 {
            add(.exposure(Exposure(kind: below(3) == 0 ? .closeContact : .secondaryContact)), recent())
        }
        if below(5) == 0 {
            let time = recent()
            add(
                .review(Review(status: .green, validUntil: time + .seconds(7 * 86_400), reason: "r", officer: "o")),
                time
            )
        } else {
            add(.retraction(Retraction(retracts: "\(person)-\(below(events.count))", reason: "r")), recent())
        }
        if below(2) == 0 {
            add(.exposure(Exposure(kind: .secondaryContact)), recent())
        } else {
            add(.testResult(TestResult(test: .pcr, result: .negative, lab: "lab")), recent())
        }
        return events
    }
}
