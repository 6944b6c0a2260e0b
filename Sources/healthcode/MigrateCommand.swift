import ArgumentParser
import HealthCodePostgres
import Logging
import PostgresNIO

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the schema migrations under projections/migrations to PostgreSQL."
    )

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = Observability.bootstrap(level: logging.level)
        let logger = Logger(label: "healthcode.migrate")
        let migrations = try SchemaMigrator.migrations(in: try migrationsDirectory())
        let client = PostgresClient(configuration: postgres.configuration.clientConfiguration(), backgroundLogger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            let applied = try await SchemaMigrator(client: client, logger: logger).migrate(migrations)
            print(applied.isEmpty ? "schema is up to date" : "applied: \(applied.joined(separator: ", "))")
            group.cancelAll()
        }
    }
}
