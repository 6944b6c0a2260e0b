import ArgumentParser
import HealthCodeBackbone
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
        let applied = try await Backbone.withPostgres(postgres.configuration.clientConfiguration(), logger: logger) {
            try await SchemaMigrator(client: $0, logger: logger).migrate(migrations)
        }
        print(applied.isEmpty ? "schema is up to date" : "applied: \(applied.joined(separator: ", "))")
    }
}
