import HealthCodeCore

/// A synthetic population for demos and load tests: people with a few events each, published by
/// the publishers a real deployment has, with deterministic content for a given seed.
///
/// Every person declares their health; many have a PCR test; some travel, a few through the
/// high-risk district ``highRiskArea``; a few are close or secondary contacts; about one in a
/// hundred tests positive. Person 0 always tests positive, so the demo has a known red person.
/// Identifiers are `DEMO-P0000000`-style, obviously not real national identifiers.
public struct DemoPopulation: Sendable {
    /// Number of people.
    public var people: Int
    /// Seed of the generator: the same seed gives the same events.
    public var seed: UInt64
    /// The instant the demo is anchored at; events lie in the days before it.
    public var anchor: Instant

    /// The high-risk district travellers pass through (Wuchang, Wuhan).
    public static let highRiskArea = "420106"
    /// A medium-risk city (Shanghai), designated for a week around the anchor.
    public static let mediumRiskArea = "310100"
    /// The publishers of the demo, one per kind of fact.
    public enum Publisher {
        public static let stateCouncil = "urn:hc:publisher:demo-state-council"
        public static let healthBureau = "urn:hc:publisher:demo-health-bureau"
        public static let transport = "urn:hc:publisher:demo-transport"
        public static let residents = "urn:hc:publisher:demo-residents"
        public static let cdc = "urn:hc:publisher:demo-cdc"

        /// Every demo publisher with the one event type it publishes.
        public static let all: [(id: String, eventType: String)] = [
            (stateCouncil, "hc.risk-area.v1"),
            (healthBureau, "hc.test-result.v1"),
            (transport, "hc.travel.v1"),
            (residents, "hc.declaration.v1"),
            (cdc, "hc.exposure.v1"),
        ]
    }

    public init(people: Int, seed: UInt64 = 2020, anchor: Instant) {
        self.people = people
        self.seed = seed
        self.anchor = anchor
    }

    /// The raw identifier of person `index` (as publishers know it, before pseudonymisation).
    public static func rawIdentifier(_ index: Int) -> String {
        let digits = String(index)
        return "DEMO-P" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
    }

    /// The risk-area designations, to be published (and projected) before the people's events.
    public func designations() -> [String] {
        let day: Int64 = 86_400_000_000
        let issued = Instant(microsecondsSinceEpoch: anchor.microsecondsSinceEpoch - 20 * day)
        let highFrom = Instant(microsecondsSinceEpoch: anchor.microsecondsSinceEpoch - 14 * day)
        let mediumFrom = Instant(microsecondsSinceEpoch: anchor.microsecondsSinceEpoch - 5 * day)
        let mediumUntil = Instant(microsecondsSinceEpoch: anchor.microsecondsSinceEpoch + 2 * day)
        return [
            event(
                id: "demo-area-high-\(Self.highRiskArea)",
                source: Publisher.stateCouncil,
                type: "hc.risk-area.v1",
                subject: Self.highRiskArea,
                time: issued,
                data: #"{"level":"high","effectiveFrom":"\#(highFrom.rfc3339Seconds)"}"#
            ),
            event(
                id: "demo-area-medium-\(Self.mediumRiskArea)",
                source: Publisher.stateCouncil,
                type: "hc.risk-area.v1",
                subject: Self.mediumRiskArea,
                time: issued,
                data:
                    #"{"level":"medium","effectiveFrom":"\#(mediumFrom.rfc3339Seconds)","effectiveUntil":"\#(mediumUntil.rfc3339Seconds)"}"#
            ),
        ]
    }

    /// The events of person `index`, as CloudEvents JSON lines.
    public func events(ofPerson index: Int) -> [String] {
        var random = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        let subject = Self.rawIdentifier(index)
        let hour: Int64 = 3_600_000_000
        func before(hours: Int64) -> Instant {
            Instant(
                microsecondsSinceEpoch: anchor.microsecondsSinceEpoch - hours * hour - Int64(random.next() % 3_600)
                    * 1_000_000
            )
        }
        let districts = ["110101", "110105", "310101", "310104", "440103", "440106", "330102", "510104"]
        var lines: [String] = []

        // Health declaration: everybody; some with symptoms or a raised temperature.
        let roll = random.next() % 100
        let symptoms = roll < 4 ? #"["fever","cough"]"# : "[]"
        let temperature = roll < 4 ? "38.1" : (roll < 6 ? "37.5" : "36.6")
        let home = districts[Int(random.next() % UInt64(districts.count))]
        lines.append(
            event(
                id: "demo-decl-\(index)",
                source: Publisher.residents,
                type: "hc.declaration.v1",
                subject: subject,
                time: before(hours: 30),
                data: #"{"symptoms":\#(symptoms),"temperatureCelsius":\#(temperature),"location":"\#(home)"}"#
            )
        )

        // Travel: four in ten; one in eight of them through the high-risk district.
        if random.next() % 10 < 4 {
            let throughHighRisk = random.next() % 8 == 0
            let to = throughHighRisk ? Self.highRiskArea : districts[Int(random.next() % UInt64(districts.count))]
            let departure = before(hours: 50)
            let arrival = Instant(microsecondsSinceEpoch: departure.microsecondsSinceEpoch + 5 * hour)
            let mode = ["train", "flight", "bus"][Int(random.next() % 3)]
            lines.append(
                event(
                    id: "demo-travel-\(index)",
                    source: Publisher.transport,
                    type: "hc.travel.v1",
                    subject: subject,
                    time: departure,
                    data:
                        #"{"mode":"\#(mode)","carrier":"G\#(100 + index % 900)","from":"\#(home)","to":"\#(to)","arrivedAt":"\#(arrival.rfc3339Seconds)"}"#
                )
            )
        }

        // Tests: six in ten have a PCR test; about one in a hundred is positive; person 0 always is.
        if index == 0 || random.next() % 10 < 6 {
            let positive = index == 0 || random.next() % 100 == 0
            lines.append(
                event(
                    id: "demo-pcr-\(index)",
                    source: Publisher.healthBureau,
                    type: "hc.test-result.v1",
                    subject: subject,
                    time: before(hours: 20),
                    data:
                        #"{"test":"pcr","result":"\#(positive ? "positive" : "negative")","lab":"demo-lab-\#(index % 17)"}"#
                )
            )
        }

        // Contacts: two in a hundred close contacts, three in a hundred secondary contacts.
        let contact = random.next() % 100
        if contact < 5 {
            lines.append(
                event(
                    id: "demo-exposure-\(index)",
                    source: Publisher.cdc,
                    type: "hc.exposure.v1",
                    subject: subject,
                    time: before(hours: 40),
                    data:
                        #"{"kind":"\#(contact < 2 ? "close-contact" : "secondary-contact")","caseRef":"demo-case-\#(index % 97)"}"#
                )
            )
        }
        return lines
    }

    private func event(
        id: String,
        source: String,
        type: String,
        subject: String,
        time: Instant,
        data: String
    )
        -> String
    {
        #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"\#(type)","subject":"\#(subject)","time":"\#(time.rfc3339Seconds)","datacontenttype":"application/json","data":\#(data)}"#
    }
}
