import Testing

@testable import HealthCodeCore

/// The pure parts of the operational facts (migration 0018): folding sharded census rows, tallying a batch's
/// publishers.
@Suite("Operational facts")
struct OperationalFactsTests {
    @Test("census rows of any shards fold into one census per area, the unknown area first, empty areas left out")
    func censusFold() {
        let rows: [(area: AreaCode?, status: CodeStatus, codes: Int)] = [
            (area("440106"), .green, 5),
            (nil, .red, 1),
            (area("110101"), .yellow, 2),
            // Another shard of the same area and colour: a shard may be negative, only sums count.
            (area("440106"), .green, -2),
            (area("440106"), .red, 4),
            (nil, .green, 3),
            // An area whose shards cancel out has no code left.
            (area("310101"), .red, 2),
            (area("310101"), .red, -2),
        ]
        #expect(
            CodeCensus.fold(rows) == [
                CodeCensus(area: nil, green: 3, red: 1),
                CodeCensus(area: area("110101"), yellow: 2),
                CodeCensus(area: area("440106"), green: 3, red: 4),
            ]
        )
        #expect(CodeCensus.fold([]).isEmpty)
    }

    @Test("a code rewritten in another area and colour moves one count from the old row to the new")
    func censusMove() {
        // What saveCodes adds for one person turning from green in 110101 to red in 440106, on top of the rows
        // that counted them before: the fold shows them in their new place only.
        let before: [(area: AreaCode?, status: CodeStatus, codes: Int)] = [
            (area("110101"), .green, 2), (area("440106"), .red, 1),
        ]
        let move: [(area: AreaCode?, status: CodeStatus, codes: Int)] = [
            (area("110101"), .green, -1), (area("440106"), .red, 1),
        ]
        #expect(
            CodeCensus.fold(before + move) == [
                CodeCensus(area: area("110101"), green: 1), CodeCensus(area: area("440106"), red: 2),
            ]
        )
        var census = CodeCensus(area: nil)
        census[.yellow] += 2
        #expect(census.yellow == 2 && census.total == 2)
    }

    @Test("a batch's publishers are tallied once each, in byte order")
    func publisherTally() {
        let sources = [
            "urn:hc:publisher:test-cdc", "urn:hc:publisher:test-bureau", "urn:hc:publisher:test-cdc",
            "urn:hc:publisher:Test-upper", "urn:hc:publisher:test-cdc",
        ]
        #expect(
            PublisherIngest.tally(sources) == [
                PublisherIngest(publisher: "urn:hc:publisher:Test-upper", events: 1),
                PublisherIngest(publisher: "urn:hc:publisher:test-bureau", events: 1),
                PublisherIngest(publisher: "urn:hc:publisher:test-cdc", events: 3),
            ]
        )
        #expect(PublisherIngest.tally([String]()).isEmpty)
    }

    @Test("a counter shard is its partition, or none for the shared shards")
    func shards() {
        #expect(CounterShard.partition(3).partition == 3)
        #expect(CounterShard.shared.partition == nil)
    }
}
