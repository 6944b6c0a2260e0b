import Foundation
import Testing

@testable import HealthCodeCore

/// Files of the repository the tests read (schemas, examples, the reference rule set, the validator script).
enum Repository {
    /// The repository root: the nearest ancestor of this file (symlinks resolved) holding schemas/.
    static let root: URL = {
        var directory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path != "/" {
            if FileManager.default.fileExists(
                atPath: directory.appendingPathComponent("schemas/event.schema.json").path
            ) {
                return directory
            }
            directory = directory.deletingLastPathComponent()
        }
        fatalError("no schemas/event.schema.json above \(#filePath)")
    }()

    static func bytes(_ relativePath: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: root.appendingPathComponent(relativePath)))
    }

    static let referenceRuleSet: RuleSet = {
        do {
            return try RuleSet.decode(try bytes("projections/rules/reference-v1.json"))
        } catch {
            fatalError("reference rule set: \(error)")
        }
    }()

    static let referencePolicy = Policy(ruleSet: referenceRuleSet)
}

/// `"2020-04-01T00:00:00Z"` as an instant; fixtures only.
func instant(_ text: String) -> Instant {
    guard let value = Instant(rfc3339: text) else { fatalError("bad fixture instant \(text)") }
    return value
}

func area(_ text: String) -> AreaCode {
    guard let code = AreaCode(text) else { fatalError("bad fixture area \(text)") }
    return code
}

let hour: Duration = .seconds(3600)
let day: Duration = .seconds(86_400)
let second: Duration = .seconds(1)

/// Builds contract events for policy tests with terse defaults: one person, one publisher.
struct EventFactory {
    var subject = "p-1"
    var source = "urn:hc:publisher:test"
    private var counter = 0

    private mutating func nextID() -> String {
        counter += 1
        return String(format: "e%04d", counter)
    }

    mutating func make(
        _ payload: EventPayload,
        at time: Instant,
        id: String? = nil,
        recorded: Instant? = nil
    )
        -> CloudEvent
    {
        let subject: String
        if case .riskArea = payload { subject = "440106" } else { subject = self.subject }
        return CloudEvent(
            id: id ?? nextID(),
            source: source,
            subject: subject,
            time: time,
            recordedTime: recorded,
            payload: payload
        )
    }

    mutating func test(
        _ method: TestResult.Method,
        _ outcome: TestResult.Outcome,
        at time: Instant,
        id: String? = nil,
        recorded: Instant? = nil
    ) -> CloudEvent {
        make(.testResult(TestResult(test: method, result: outcome, lab: "lab")), at: time, id: id, recorded: recorded)
    }

    mutating func exposure(_ kind: Exposure.Kind, at time: Instant, id: String? = nil) -> CloudEvent {
        make(.exposure(Exposure(kind: kind)), at: time, id: id)
    }

    mutating func travel(
        from: String,
        to: String,
        at time: Instant,
        arrivedAt: Instant,
        id: String? = nil
    )
        -> CloudEvent
    {
        make(.travel(Travel(mode: .train, from: area(from), to: area(to), arrivedAt: arrivedAt)), at: time, id: id)
    }

    mutating func declaration(
        _ symptoms: [Declaration.Symptom],
        temperature: Double? = nil,
        location: String? = nil,
        at time: Instant,
        id: String? = nil
    ) -> CloudEvent {
        make(
            .declaration(
                Declaration(symptoms: symptoms, temperatureCelsius: temperature, location: location.map(area))
            ),
            at: time,
            id: id
        )
    }

    mutating func review(_ status: CodeStatus, at time: Instant, until: Instant, id: String? = nil) -> CloudEvent {
        make(.review(Review(status: status, validUntil: until, reason: "r", officer: "o")), at: time, id: id)
    }

    mutating func retraction(
        of target: String,
        at time: Instant,
        subject: String? = nil,
        source: String? = nil
    )
        -> CloudEvent
    {
        var event = make(.retraction(Retraction(retracts: target, reason: "r")), at: time)
        if let subject { event.subject = subject }
        if let source { event.source = source }
        return event
    }

    mutating func designation(
        _ code: String,
        _ level: RiskAreaDesignation.Level,
        from: Instant,
        until: Instant? = nil,
        issued: Instant,
        id: String? = nil,
        recorded: Instant? = nil
    ) -> CloudEvent {
        var event = make(
            .riskArea(RiskAreaDesignation(level: level, effectiveFrom: from, effectiveUntil: until)),
            at: issued,
            id: id,
            recorded: recorded
        )
        event.subject = code
        return event
    }
}

/// Folds events as the projector and `healthcode evaluate` do: person events into the person's state,
/// designations and their retractions into the area map.
struct History {
    var person = PersonState()
    var areas = RiskAreaMap()

    init(_ events: [CloudEvent] = []) {
        for event in events { apply(event) }
    }

    mutating func apply(_ event: CloudEvent) {
        if event.isPersonEvent { person.apply(event) } else { areas.apply(event) }
    }

    func evaluate(at: Instant, knownAt: Instant? = nil, policy: Policy = Repository.referencePolicy) -> CodeDecision {
        policy.evaluate(person, areas: areas, at: at, knownAt: knownAt)
    }
}
