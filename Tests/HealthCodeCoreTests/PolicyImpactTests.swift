import Testing

@testable import HealthCodeCore

@Suite("Policy impact")
struct PolicyImpactTests {
    static let at = instant("2020-04-20T10:00:00Z")

    @Test("transitions are counted by area with the smallest pseudonyms as samples; reports merge")
    func counting() {
        var first = ImpactReport(samplesPerLine: 2)
        var second = ImpactReport(samplesPerLine: 2)
        first.record("p3", area: area("440106"), from: .green, to: .red)
        first.record("p1", area: area("440106"), from: .green, to: .red)
        first.record("p9", area: nil, from: .yellow, to: .green)
        first.record("p5", area: area("440106"), from: .green, to: .green)
        second.record("p2", area: area("440106"), from: .green, to: .red)
        second.record("p0", area: area("110101"), from: .yellow, to: .red)
        second.record("p7", area: area("440106"), from: .red, to: .red)
        first.merge(second)
        #expect(first.people == 7)
        #expect(first.changed == 5)
        #expect(first.turningRed == 4)
        #expect(first.unchanged == [.green: 1, .red: 1])
        #expect(first.byTransition[.init(from: .green, to: .red)] == 3)
        let lines = first.lines
        #expect(lines.map(\.count) == [3, 1, 1])
        #expect(lines[0].area == area("440106") && lines[0].samples == ["p1", "p2"], "the two smallest")
        #expect(lines[1].area == area("110101") && lines[1].transition.to == .red, "towards red first")
        #expect(lines[2].area == nil && lines[2].transition == .init(from: .yellow, to: .green))
        let json = String(decoding: first.jsonBytes(), as: UTF8.self)
        #expect(json.hasPrefix(#"{"people":7,"changed":5,"turningRed":4,"unchanged":{"green":1,"yellow":0,"red":1}"#))
        #expect(json.contains(#"{"area":"440106","from":"green","to":"red","count":3,"samples":["p1","p2"]}"#))
    }

    @Test("a designation moves the people present in its area; a rule change moves those its rules reach")
    func comparisons() throws {
        var factory = EventFactory()
        let traveller = History([
            factory.travel(from: "110101", to: "440106", at: Self.at - day * 2, arrivedAt: Self.at - day * 2)
        ])
        factory.subject = "p-2"
        let contact = History([factory.exposure(.closeContact, at: Self.at - day * 20)])
        let designation = factory.designation(
            "440106",
            .high,
            from: Self.at - day * 5,
            issued: Self.at - day,
            recorded: Self.at - day
        )
        let policy = Repository.referencePolicy
        let byDesignation = PolicyComparison(policy: policy, areas: RiskAreaMap(), adding: designation, at: Self.at)
        var report = ImpactReport()
        byDesignation.compare(traveller.person, of: "p-1", into: &report)
        byDesignation.compare(contact.person, of: "p-2", into: &report)
        #expect(report.changed == 1 && report.lines.first?.samples == ["p-1"])
        #expect(report.lines.first?.area == area("440106"), "the traveller's last known area")
        #expect(report.lines.first?.transition.from == .green && report.lines.first?.transition.to != .green)

        let longer = try RuleSet.decode(
            Array(
                String(decoding: try Repository.bytes("projections/rules/reference-v1.json"), as: UTF8.self)
                    .replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"").utf8
            )
        )
        let byRules = PolicyComparison(
            current: policy,
            proposed: Policy(ruleSet: longer),
            areas: RiskAreaMap(),
            at: Self.at
        )
        var rules = ImpactReport()
        byRules.compare(traveller.person, of: "p-1", into: &rules)
        byRules.compare(contact.person, of: "p-2", into: &rules)
        #expect(
            rules.turningRed == 1 && rules.lines.first?.samples == ["p-2"],
            "a contact 20 days ago: red for 28 days"
        )
        #expect(rules.lines.first?.area == nil, "a contact says nothing of where the person is")
    }

    @Test("the last known area is the latest journey's destination or declared location")
    func lastKnownArea() {
        var factory = EventFactory()
        var history = History([
            factory.travel(from: "110101", to: "440106", at: Self.at - day * 3, arrivedAt: Self.at - day * 3),
            factory.travel(from: "440106", to: "310101", at: Self.at - day * 2, arrivedAt: Self.at - day * 2),
        ])
        #expect(history.person.lastKnownArea == area("310101"))
        history.apply(factory.declaration([], location: "120101", at: Self.at - day))
        #expect(history.person.lastKnownArea == area("120101"))
        #expect(PersonState().lastKnownArea == nil)
    }

    @Test("a report read back from its JSON (as a held change keeps it) equals the report; bad JSON names its field")
    func reportRoundTrip() throws {
        var report = ImpactReport(samplesPerLine: 2)
        for index in 0..<7 {
            let subject = String(format: "%032x", index)
            report.record(subject, area: index % 2 == 0 ? AreaCode("420106") : nil, from: .green, to: .red)
            report.record(subject + "", area: AreaCode("110101"), from: .yellow, to: .yellow)
        }
        report.record(String(repeating: "f", count: 32), area: AreaCode("310101"), from: .red, to: .green)
        let read = try ImpactReport(storedJSON: report.jsonBytes())
        #expect(read == report)
        #expect(read.turningRed == report.turningRed)
        #expect(read.lines.map(\.samples) == report.lines.map(\.samples))
        let broken = #"{"people":1,"transitions":[{"area":"42","from":"green","to":"red","count":1,"samples":[]}]}"#
        let error = #expect(throws: StoredJSONError.self) { try ImpactReport(storedJSON: Array(broken.utf8)) }
        #expect(error?.description.contains("transitions[0].area") == true)
    }
}
