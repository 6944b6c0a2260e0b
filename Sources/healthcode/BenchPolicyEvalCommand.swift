import ArgumentParser
import HealthCodeBenchmarks
import HealthCodeCore

/// `healthcode bench policy-eval`: person evaluations per second on one core (build with `-c release`).
struct BenchPolicyEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy-eval",
        abstract: "Measure person evaluations (with validUntil) per second on one core for 20-event histories."
    )

    @Option(help: "Number of synthetic persons.")
    var persons = 10_000

    @Option(help: "Seconds to time evaluation, and again the baseline.")
    var seconds = 3.0

    @Option(help: "Seed of the history generator.")
    var seed: UInt64 = 42

    @Option(help: "Rule set file (default: projections/rules/reference-v1.json, searched from here upwards).")
    var rules: String?

    func run() throws {
        let ruleSet = try Evaluate.loadRuleSet(rules)
        PolicyEvalBenchmark.run(ruleSet: ruleSet, persons: persons, seconds: seconds, seed: seed) { print($0) }
    }
}
