import Foundation
import Logging
import Synchronization
import Testing

@testable import HealthCodeCore

@Suite("Rule set timeline")
struct RuleSetTimelineTests {
    static let longer: RuleSet = {
        let text = String(decoding: try! Repository.bytes("projections/rules/reference-v1.json"), as: UTF8.self)
            .replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
            .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"")
        return try! RuleSet.decode(Array(text.utf8))
    }()

    @Test("the rule set in force is the latest effective at the instant; a tie goes to the later activation")
    func versionInForce() {
        let start = instant("2020-04-01T00:00:00Z")
        let day = Duration.seconds(86_400)
        let reference = Repository.referenceRuleSet
        // Given out of order, as a reader might: activations 3 and 2 share an instant.
        let timeline = RuleSetTimeline([
            .init(order: 3, effectiveFrom: start + day * 10, ruleSet: reference),
            .init(order: 1, effectiveFrom: start, ruleSet: reference),
            .init(order: 2, effectiveFrom: start + day * 10, ruleSet: Self.longer),
            .init(order: 4, effectiveFrom: start + day * 20, ruleSet: Self.longer),
        ])
        #expect(timeline.policy(at: start - .seconds(1)) == nil)
        #expect(timeline.policy(at: start)?.ruleSet.version == "1.0.0")
        #expect(timeline.policy(at: start + day * 10 - .seconds(1))?.ruleSet.version == "1.0.0")
        #expect(timeline.policy(at: start + day * 10)?.ruleSet.version == "1.0.0", "activation 3 came after 2")
        #expect(timeline.policy(at: start + day * 20)?.ruleSet.version == "1.1.0")
        #expect(timeline.policy(at: start + day * 365)?.ruleSet.version == "1.1.0")
        #expect(RuleSetTimeline([]).policy(at: start) == nil)
    }
}

/// Activations in memory, as `rule_set_activation` would hand them out.
final class ActivationList: RuleSetActivations {
    let rows: Mutex<[(activation: Int64, effectiveFrom: Instant, body: [UInt8])]>
    init(_ rows: [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]) { self.rows = Mutex(rows) }
    func append(_ row: (activation: Int64, effectiveFrom: Instant, body: [UInt8])) { rows.withLock { $0.append(row) } }
    func activations(
        after activation: Int64
    ) async throws -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])] {
        rows.withLock { $0.filter { $0.activation > activation } }
    }
}

@Suite("Rule set catalog")
struct RuleSetCatalogTests {
    @Test("follows activations as they are recorded; the configured rule set decides before the first")
    func followsActivations() async throws {
        let start = instant("2020-04-01T00:00:00Z")
        let reference = try Repository.bytes("projections/rules/reference-v1.json")
        let longer = Array(
            String(decoding: reference, as: UTF8.self)
                .replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
                .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"").utf8
        )
        let list = ActivationList([(1, start, reference)])
        let catalog = RuleSetCatalog(source: list, configured: Repository.referencePolicy, logger: Logger(label: "t"))
        #expect(catalog.policy(at: start + .seconds(86_400)).ruleSet.version == "1.0.0", "configured until refreshed")
        try await catalog.refresh(from: list)
        list.append((2, start + .seconds(86_400), longer))
        list.append((3, start, Array("not a rule set".utf8)))
        #expect(
            try await catalog.policy(at: start + .seconds(86_400), maximumAge: .seconds(60)).ruleSet.version == "1.0.0"
        )
        #expect(try await catalog.policy(at: start + .seconds(86_400), maximumAge: .zero).ruleSet.version == "1.1.0")
        #expect(catalog.policy(at: start).ruleSet.version == "1.0.0", "the unreadable activation is left out")
        #expect(catalog.policy(at: start - .seconds(1)).ruleSet.version == "1.0.0", "before any: the configured")
    }

    @Test("names an activated rule set by its hash or ID@VERSION, or the configured one; unknown and ambiguous names")
    func namedRuleSets() async throws {
        let start = instant("2020-04-01T00:00:00Z")
        let reference = try Repository.bytes("projections/rules/reference-v1.json")
        let longerText = String(decoding: reference, as: UTF8.self)
            .replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
            .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"1.1.0\"")
        let longer = Array(longerText.utf8)
        // Same id and version as `longer`, other contents: its ID@VERSION no longer names one rule set.
        let clash = Array(longerText.replacingOccurrences(of: "\"P28D\"", with: "\"P21D\"").utf8)
        let longerSet = try RuleSet.decode(longer)
        let list = ActivationList([(1, start + .seconds(86_400), longer)])
        let catalog = RuleSetCatalog(source: list, configured: Repository.referencePolicy, logger: Logger(label: "t"))
        // Found without an explicit refresh: an unknown name re-reads the activations once.
        #expect(try await catalog.policy(named: longerSet.contentHash)?.ruleSet.contentHash == longerSet.contentHash)
        #expect(try await catalog.policy(named: "\(longerSet.id)@1.1.0")?.ruleSet.version == "1.1.0")
        let configured = Repository.referencePolicy.ruleSet
        #expect(try await catalog.policy(named: configured.contentHash)?.ruleSet.version == "1.0.0")
        #expect(try await catalog.policy(named: "\(configured.id)@1.0.0")?.ruleSet.version == "1.0.0")
        #expect(try await catalog.policy(named: "sha256:0000") == nil)
        #expect(try await catalog.policy(named: "\(longerSet.id)@9.9.9") == nil)
        list.append((2, start + .seconds(2 * 86_400), clash))
        try await catalog.refresh(from: list)
        await #expect(throws: RuleSetNameError.self) { try await catalog.policy(named: "\(longerSet.id)@1.1.0") }
        #expect(try await catalog.policy(named: try RuleSet.decode(clash).contentHash)?.ruleSet.version == "1.1.0")
    }
}
