import HealthCodeBackbone
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// The migrator against the real server: migrations that touch cluster-wide objects (roles, memberships)
/// in several databases of one cluster at once.
@Suite("Schema migrator", .timeLimit(.minutes(2)))
struct SchemaMigratorTests {
    /// `stagger`: how long after the first the second database starts. At 0 both create the role together and
    /// the second gets a unique violation on pg_authid; at 250 ms the first has committed before the second
    /// creates, which gets "role already exists".
    @Test(
        "two databases creating the same role at once both migrate: the loser of the catalog race tries again",
        arguments: [0, 250]
    )
    func catalogRace(stagger: Int) async throws {
        let logger = testLogger()
        let role = LocalInfrastructure.uniqueName("hc_race")
        let databases = [LocalInfrastructure.uniqueName("hc_test"), LocalInfrastructure.uniqueName("hc_test")]
        let admin = TestBackbone.clientConfiguration(
            port: LocalInfrastructure.postgresPort,
            database: "healthcode",
            serviceLimits: false
        )
        try await Backbone.withPostgres(admin, logger: logger) { client in
            for database in databases {
                try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"), logger: logger)
            }
        }
        // What migration 0013 does, with the window between the check and the creation held open so
        // that both databases see no role and both create it: one of them gets a unique violation
        // on pg_authid when the other commits.
        let migration = SchemaMigrator.Migration(
            version: "0001_race",
            sql: """
                DO $$
                BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(role)') THEN
                        PERFORM pg_sleep(0.5);
                        CREATE ROLE \(role) NOLOGIN;
                    END IF;
                END
                $$;
                """
        )
        let applied = try await withThrowingTaskGroup(of: [String].self) { group in
            for (index, database) in databases.enumerated() {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(index * stagger))
                    var configuration = admin
                    configuration.database = database
                    return try await Backbone.withPostgres(configuration, logger: logger) { client in
                        try await SchemaMigrator(client: client, logger: logger).migrate([migration])
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(applied == [["0001_race"], ["0001_race"]])
        try await Backbone.withPostgres(admin, logger: logger) { client in
            let rows = try await client.query(
                PostgresQuery(unsafeSQL: "SELECT count(*) FROM pg_roles WHERE rolname = '\(role)'"),
                logger: logger
            )
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            #expect(count == 1)
            try await client.query(PostgresQuery(unsafeSQL: "DROP ROLE \(role)"), logger: logger)
        }
    }
}
