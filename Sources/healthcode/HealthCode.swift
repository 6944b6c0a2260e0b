import ArgumentParser

@main
struct HealthCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcode",
        abstract: "HealthCode: an event-sourced backbone for personal health codes.",
        subcommands: [
            UpCommand.self,
            GatewayCommand.self,
            ProjectorCommand.self,
            APICommand.self,
            SetupCommand.self,
            MigrateCommand.self,
            PseudonymCommand.self,
            Publishers.self,
            Analysts.self,
            Audit.self,
            Verify.self,
            DeadLetters.self,
            Evaluate.self,
            Bench.self,
        ]
    )
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print ratios against a baseline measured in the same run.",
        subcommands: [BenchPolicyEval.self, BenchKafka.self, BenchProjector.self, BenchIngest.self, BenchLookup.self]
    )
}
