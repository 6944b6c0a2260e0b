import HealthCodeBackbone
import HealthCodePostgres
import HealthCodeTestSupport
import PostgresNIO
import Testing

/// Least privilege in PostgreSQL (migration 0013): each service's role can do what its service does and
/// nothing else, and no role a service or the migrations use can change the analyst audit.
@Suite("Service roles", .timeLimit(.minutes(2)))
struct ServiceRoleTests {
    /// Runs `statement` as `role` (nil: the migrating role) on the backbone's database; whether it succeeded.
    func succeeds(_ statement: String, as role: ServiceRole?, on backbone: TestBackbone) async throws -> Bool {
        let configuration = TestBackbone.clientConfiguration(
            port: backbone.postgresPort,
            database: backbone.database,
            serviceLimits: false,
            role: role
        )
        return try await Backbone.withPostgres(configuration, logger: testLogger()) { client in
            do {
                try await client.query(PostgresQuery(unsafeSQL: statement), logger: testLogger())
                return true
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" {
                // insufficient_privilege: refused by a grant, an owner check or the audit's triggers.
                return false
            }
        }
    }

    @Test("the API's role cannot disable the audit's triggers, change a code or delete the audit")
    func apiRole() async throws {
        let backbone = try await TestBackbone.make()
        // What the API does is allowed: it reads codes and appends to the audit.
        #expect(try await succeeds("SELECT count(*) FROM person_code", as: .api, on: backbone))
        #expect(
            try await succeeds(
                "INSERT INTO analyst_audit (subject, analyst_id, purpose, endpoint) VALUES ('s', 'a', 'p', 'e')",
                as: .api,
                on: backbone
            )
        )
        #expect(try await !succeeds("ALTER TABLE analyst_audit DISABLE TRIGGER ALL", as: .api, on: backbone))
        #expect(try await !succeeds("UPDATE person_code SET status = status", as: .api, on: backbone))
        #expect(try await !succeeds("DELETE FROM analyst_audit", as: .api, on: backbone))
        #expect(try await !succeeds("DELETE FROM decision_log", as: .api, on: backbone))
        #expect(try await succeeds("SELECT count(*) FROM analyst_audit", as: nil, on: backbone))
    }

    @Test("the gateway reads publishers only; the projector writes projections but reads no credential")
    func gatewayAndProjectorRoles() async throws {
        let backbone = try await TestBackbone.make()
        #expect(try await succeeds("SELECT count(*) FROM publisher", as: .gateway, on: backbone))
        #expect(try await !succeeds("UPDATE publisher SET revoked_at = now()", as: .gateway, on: backbone))
        #expect(try await !succeeds("SELECT count(*) FROM person_code", as: .gateway, on: backbone))
        #expect(try await succeeds("DELETE FROM person_state", as: .projector, on: backbone))
        #expect(try await !succeeds("SELECT count(*) FROM analyst_credential", as: .projector, on: backbone))
        #expect(try await !succeeds("SELECT count(*) FROM publisher", as: .projector, on: backbone))
        #expect(try await !succeeds("ALTER TABLE analyst_audit DISABLE TRIGGER ALL", as: .projector, on: backbone))
        // The gateway counts overrides and holds reviews; it cannot touch the review audit.
        #expect(try await succeeds("SELECT count(*) FROM review_audit", as: .gateway, on: backbone))
        #expect(try await !succeeds("DELETE FROM review_audit", as: .gateway, on: backbone))
        #expect(try await !succeeds("ALTER TABLE review_audit DISABLE TRIGGER ALL", as: .gateway, on: backbone))
    }

    @Test("not even the migrating role can disable the audits' triggers once they have their owner")
    func migratingRole() async throws {
        let backbone = try await TestBackbone.make()
        #expect(try await !succeeds("ALTER TABLE analyst_audit DISABLE TRIGGER ALL", as: nil, on: backbone))
        #expect(try await !succeeds("DELETE FROM analyst_audit", as: nil, on: backbone))
        #expect(try await !succeeds("ALTER TABLE review_audit DISABLE TRIGGER ALL", as: nil, on: backbone))
        #expect(try await succeeds("SELECT count(*) FROM review_audit", as: nil, on: backbone))
    }
}
