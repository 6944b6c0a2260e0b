import HealthCodeCore

/// Known input for projector benchmarks and fault tests: people with mixed histories (tests,
/// journeys, contacts, declarations), designations that arrive before and after the presences they
/// concern, retractions; every event already as the gateway writes it (pseudonymised, recorded).
public struct ProjectorWorkload: Sendable {
    public let people: Int
    public let eventsPerPerson: Int
    public let anchor: Instant

    public init(people: Int, eventsPerPerson: Int, anchor: Instant) {
        self.people = people
        self.eventsPerPerson = eventsPerPerson
        self.anchor = anchor
    }

    private static let areas = ["110101", "110105", "310101", "310104", "440103", "420106", "420102", "330102"]
    private static let hour: Int64 = 3_600_000_000

    /// Pseudonym-shaped subjects, one per person.
    public var subjects: [String] {
        (0..<people).map { index in
            let digits = String(index, radix: 16)
            return String(repeating: "0", count: 32 - digits.count) + digits
        }
    }

    /// Designations: the first before any person event, the second (a city covering 420102) midway.
    public func designations(midway: Bool) -> [CloudEvent] {
        let start = Instant(microsecondsSinceEpoch: anchor.microsecondsSinceEpoch - 300 * Self.hour)
        if midway {
            return [
                CloudEvent(
                    id: "area-city-4201",
                    source: "urn:hc:publisher:test-state-council",
                    subject: "420100",
                    time: anchor,
                    recordedTime: anchor,
                    payload: .riskArea(RiskAreaDesignation(level: .medium, effectiveFrom: start))
                )
            ]
        }
        return [
            CloudEvent(
                id: "area-district-420106",
                source: "urn:hc:publisher:test-state-council",
                subject: "420106",
                time: start,
                recordedTime: anchor,
                payload: .riskArea(RiskAreaDesignation(level: .high, effectiveFrom: start))
            )
        ]
    }

    /// The events of one person, deterministic for its index.
    public func events(ofPerson index: Int, subject: String) -> [CloudEvent] {
        var random = UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15 | 1
        func next(_ bound: Int) -> Int {
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            return Int(random % UInt64(bound))
        }
        func instant(hoursAgo: Int) -> Instant {
            Instant(
                microsecondsSinceEpoch: anchor.microsecondsSinceEpoch - Int64(hoursAgo) * Self.hour - Int64(next(3600))
                    * 1_000_000
            )
        }
        var events: [CloudEvent] = []
        for number in 0..<eventsPerPerson {
            let id = "w-\(index)-\(number)"
            let time = instant(hoursAgo: 1 + next(400))
            let payload: EventPayload
            let source: String
            switch next(10) {
            case 0, 1:
                source = "urn:hc:publisher:test-bureau"
                payload = .testResult(
                    TestResult(
                        test: next(3) == 0 ? .antigen : .pcr,
                        result: next(8) == 0 ? .positive : .negative,
                        lab: "lab"
                    )
                )
            case 2, 3:
                source = "urn:hc:publisher:test-transport"
                let arrival = Instant(
                    microsecondsSinceEpoch: time.microsecondsSinceEpoch + Int64(1 + next(10)) * Self.hour
                )
                payload = .travel(
                    Travel(
                        mode: .train,
                        from: AreaCode(Self.areas[next(Self.areas.count)])!,
                        to: AreaCode(Self.areas[next(Self.areas.count)])!,
                        arrivedAt: arrival
                    )
                )
            case 4:
                source = "urn:hc:publisher:test-cdc"
                payload = .exposure(Exposure(kind: next(2) == 0 ? .closeContact : .secondaryContact))
            default:
                source = "urn:hc:publisher:test-residents"
                payload = .declaration(
                    Declaration(
                        symptoms: next(6) == 0 ? [.cough] : [],
                        temperatureCelsius: next(2) == 0 ? 36.5 + Double(next(15)) / 10 : nil,
                        location: next(2) == 0 ? AreaCode(Self.areas[next(Self.areas.count)])! : nil
                    )
                )
            }
            events.append(
                CloudEvent(id: id, source: source, subject: subject, time: time, recordedTime: anchor, payload: payload)
            )
        }
        // One person in twenty has a wrong event retracted by its publisher.
        if index % 20 == 0, let first = events.first {
            events.append(
                CloudEvent(
                    id: "retract-\(first.id)",
                    source: first.source,
                    subject: subject,
                    time: anchor,
                    recordedTime: anchor,
                    payload: .retraction(Retraction(retracts: first.id, reason: "entered for the wrong person"))
                )
            )
        }
        return events
    }

    /// Every event: the early designation, all people's events, the midway designation in the middle.
    public func allEvents() -> [CloudEvent] {
        var personEvents: [CloudEvent] = []
        personEvents.reserveCapacity(people * (eventsPerPerson + 1))
        for (index, subject) in subjects.enumerated() {
            personEvents.append(contentsOf: events(ofPerson: index, subject: subject))
        }
        let half = personEvents.count / 2
        return designations(midway: false) + personEvents[..<half] + designations(midway: true) + personEvents[half...]
    }
}
