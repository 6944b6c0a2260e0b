import ArgumentParser
import Foundation
import HealthCodeCore

/// `healthcode evaluate`: the policy over a file of events, offline (docs/POLICY.md §4).
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate every person in a file of events with the code policy, offline.",
        discussion: """
            Prints one JSON object per person subject, sorted by subject: {"subject", "status", "validUntil", \
            "reasons"}. Instants are RFC 3339 UTC in whole seconds. Designations and their retractions apply \
            to everyone; an event repeated with the same source and id counts once (the first one). The rule \
            set's id, version and hash go to standard error.
            """
    )

    @Option(help: "Events, one JSON object per line (NDJSON) or one JSON array; '-' reads standard input.")
    var events: String

    @Option(help: "The instant to evaluate at, RFC 3339 (e.g. 2020-04-03T12:00:00Z).")
    var at: String

    @Option(name: .customLong("known-at"), help: "Only events recorded by this instant count (default: --at).")
    var knownAt: String?

    @Option(help: "Rule set file (default: projections/rules/reference-v1.json, searched from here upwards).")
    var rules: String?

    func run() throws {
        guard let atInstant = Instant(rfc3339: at) else {
            throw ValidationError("--at must be an RFC 3339 date-time, e.g. 2020-04-03T12:00:00Z")
        }
        var knownAtInstant: Instant?
        if let knownAt {
            guard let parsed = Instant(rfc3339: knownAt) else {
                throw ValidationError("--known-at must be an RFC 3339 date-time, e.g. 2020-04-03T12:00:00Z")
            }
            knownAtInstant = parsed
        }
        let ruleSet = try Self.loadRuleSet(rules)
        let policy = Policy(ruleSet: ruleSet)
        let body: Data
        do {
            body =
                events == "-"
                ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: events))
        } catch {
            throw EvaluateFailure("cannot read events file \(events)")
        }
        let batch = EventDecoder.decodeBatch(body)
        if let error = batch.error { throw EvaluateFailure("\(events): \(error)") }

        var seen = Set<EventReference>()
        var persons: [String: PersonState] = [:]
        var areas = RiskAreaMap()
        for item in batch.items {
            let event: CloudEvent
            switch item {
            case .success(let decoded): event = decoded
            case .failure(let error): throw EvaluateFailure("\(events): \(error)")
            }
            guard seen.insert(event.reference).inserted else { continue }
            if event.isPersonEvent {
                persons[event.subject, default: PersonState()].apply(event)
            } else {
                areas.apply(event)
            }
        }

        FileHandle.standardError.write(
            Data("evaluate: rule set \(ruleSet.id) \(ruleSet.version) \(ruleSet.contentHash)\n".utf8)
        )
        // Subjects are ASCII (the contract), so byte order is code point order.
        let subjects = persons.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var output = [UInt8]()
        output.reserveCapacity(1 << 16)
        for subject in subjects {
            let decision = policy.evaluate(persons[subject]!, areas: areas, at: atInstant, knownAt: knownAtInstant)
            output += decision.evaluationLine(subject: subject)
            output.append(0x0A)
            if output.count >= 1 << 16 {
                FileHandle.standardOutput.write(Data(output))
                output.removeAll(keepingCapacity: true)
            }
        }
        FileHandle.standardOutput.write(Data(output))
    }

    /// Loads `path`, or the reference rule set found from the current directory or the executable.
    static func loadRuleSet(_ path: String?) throws -> RuleSet {
        let url: URL
        if let path {
            url = URL(fileURLWithPath: path)
        } else {
            guard let found = ProjectFiles.locate("projections/rules/reference-v1.json") else {
                throw EvaluateFailure("no projections/rules/reference-v1.json found; pass --rules FILE")
            }
            url = found
        }
        let bytes: Data
        do {
            bytes = try Data(contentsOf: url)
        } catch {
            throw EvaluateFailure("cannot read rule set \(url.path)")
        }
        do {
            return try RuleSet.decode(bytes)
        } catch {
            throw EvaluateFailure("rule set \(url.path): \(error)")
        }
    }
}

/// A failure of an offline command, printed as `Error: <message>` with a non-zero exit status.
struct EvaluateFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
