import ArgumentParser
import Foundation
import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging
import PostgresNIO

/// What `healthcode explain` and `healthcode evidence` both ask: whose code, at which instant, as known when,
/// judged by which rules, and who asks why (recorded in `analyst_audit` before anything is read).
struct ReplayOptions: ParsableArguments {
    @Argument(help: "The person's pseudonym (32 hex digits; `healthcode pseudonym` derives it).") var pseudonym: String
    @Option(help: "The instant to explain (RFC 3339; default now).") var at: String?
    @Option(name: .customLong("known-at"), help: "As known at this instant (RFC 3339; default: --at).")
    var knownAt: String?
    @Option(
        help: """
            Judge by this rule set instead of the one in force at --known-at: an activated one by its hash or \
            ID@VERSION (`healthcode rules list`), or a rule-set file (what the decision would have been under it).
            """
    )
    var rules: String?
    @Option(help: "Who asks: recorded in the audit with the purpose.") var analyst: String
    @Option(help: "Why: recorded in the audit (a case number, a complaint).") var purpose: String

    func validate() throws {
        guard Pseudonymizer.isPseudonym(pseudonym) else {
            throw ValidationError("the pseudonym must be 32 lowercase hex digits (`healthcode pseudonym` derives it)")
        }
        guard !analyst.isEmpty, !purpose.isEmpty else {
            throw ValidationError("--analyst and --purpose must not be empty")
        }
        _ = try instants()
    }

    /// `--at` (default now) and `--known-at` (`nil`: the same as `--at`).
    func instants() throws -> (at: Instant, knownAt: Instant?) {
        (try Self.instant(at, option: "--at") ?? Instant.now(), try Self.instant(knownAt, option: "--known-at"))
    }

    /// The rule-set file `--rules` names, if it names a file (`nil`: it names a stored rule set, or is absent).
    func rulesFile() throws -> [UInt8]? {
        guard let rules, FileManager.default.fileExists(atPath: rules) else { return nil }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rules)))
        do {
            _ = try RuleSet.decode(bytes)
        } catch {
            throw ValidationError("--rules \(rules): \(error)")
        }
        return bytes
    }

    /// Runs `body` on PostgreSQL as the query API's role (it may read what a replay needs and append to the
    /// audit, nothing more), after recording the read as `endpoint` in the audit: a read that cannot be
    /// audited is not made.
    func audited<Result: Sendable>(
        endpoint: String,
        postgres: PostgresOptions,
        logger: Logger,
        _ body: (PostgresClient) async throws -> Result
    ) async throws -> Result {
        try await Backbone.withPostgres(postgres.configuration(for: .api).clientConfiguration(), logger: logger) {
            client in
            try await AnalystStore(client: client, logger: logger)
                .record(analyst: analyst, purpose: purpose, subject: pseudonym, endpoint: endpoint)
            return try await body(client)
        }
    }

    static func instant(_ text: String?, option: String) throws -> Instant? {
        guard let text else { return nil }
        guard let instant = Instant(rfc3339: text) else {
            throw ValidationError("\(option) must be an RFC 3339 instant such as 2020-04-03T10:00:00Z")
        }
        return instant
    }

    static func unknownRuleSet(_ name: String) -> ValidationError {
        ValidationError(
            "--rules \(name) is neither a file nor the hash or ID@VERSION of an activated rule set "
                + "(see healthcode rules list)"
        )
    }
}

/// `healthcode explain`: the API's explanation from the command line, read straight from PostgreSQL as the
/// query API's role (`HC_PG_API_PASSWORD`) and audited like the API's (`analyst_audit`, endpoint `explain-cli`).
struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Why a person had a code at an instant, as known then: the events, the rules, the rule set."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @OptionGroup var replay: ReplayOptions
    @Option(help: "text (for people) or json (the API's answer).") var format: Format = .text
    @Option(help: "Timeline events per page (1 to 1000).") var limit: Int = PersonExplanations.defaultPageSize
    @Option(help: "An earlierPage token from a previous page.") var page: String?
    @OptionGroup var postgres: PostgresOptions

    func validate() throws {
        guard (1...PersonExplanations.maximumPageSize).contains(limit) else {
            throw ValidationError("--limit must be from 1 to \(PersonExplanations.maximumPageSize)")
        }
        if let page, ExplanationPage(token: page) == nil {
            throw ValidationError("--page must be an earlierPage token from an earlier explanation")
        }
    }

    func run() async throws {
        let logger = Logger(label: "healthcode.explain")
        let (at, knownAt) = try replay.instants()
        // Decides only on a database where no rule set was ever activated (HC_RULES or the reference file).
        let fallback = try RulesOptions.parse([]).ruleSet()
        let file = try replay.rulesFile().map { Policy(ruleSet: try RuleSet.decode($0)) }
        let explanation = try await replay.audited(endpoint: "explain-cli", postgres: postgres, logger: logger) {
            client in
            let built = Backbone.explanations(postgres: client, ruleSet: fallback, logger: logger)
            var named = file
            if let rules = replay.rules, named == nil {
                guard let stored = try await built.queries.policy(named: rules) else {
                    throw ReplayOptions.unknownRuleSet(rules)
                }
                named = stored
            }
            return try await built.explanations.explain(
                replay.pseudonym,
                at: at,
                knownAt: knownAt,
                ruleSet: named,
                page: page.flatMap(ExplanationPage.init(token:)),
                limit: limit
            )
        }
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
            FileHandle.standardOutput.write(try encoder.encode(explanation) + Data("\n".utf8))
        case .text:
            print(Self.text(explanation), terminator: "")
        }
    }

    /// The explanation for people: the code and its rule set, the firing rules, the timeline.
    static func text(_ explanation: PersonExplanation) -> String {
        let code = explanation.code
        var out = "\(explanation.subject) at \(explanation.at.rfc3339), as known at \(explanation.knownAt.rfc3339): "
        out += "\(code.status.rawValue.uppercased())"
        out += code.validUntil.map { " until \($0.rfc3339)" } ?? ""
        out += "\n  decided by rule set \(code.ruleSet.id) \(code.ruleSet.version) (\(code.ruleSet.hash))\n"
        out += explanation.firingRules.isEmpty ? "  no rule fires\n" : "  firing rules:\n"
        for rule in explanation.firingRules {
            let since = (rule.firesEarlier ? "at or before " : "") + rule.since.rfc3339
            out += "    \(rule.rule) (\(rule.colour.rawValue)) since \(since)"
            out += rule.until.map { " until \($0.rfc3339)" } ?? ", no end"
            out += "; events: " + rule.events.map { "\($0.source) \($0.id)" }.joined(separator: ", ") + "\n"
        }
        out += "  timeline (\(explanation.timeline.count) events):\n"
        for event in explanation.timeline {
            out += "    \(event.time.rfc3339)  \(event.known ? "known  " : "unknown")  \(event.type)  "
            out += "\(event.source) \(event.id)  recorded \(event.recordedTime.rfc3339)"
            out += event.firingRules.isEmpty ? "" : "  → " + event.firingRules.joined(separator: ", ")
            out += "\n"
        }
        if let earlier = explanation.earlierPage { out += "  earlier events: --page \(earlier)\n" }
        return out
    }
}
