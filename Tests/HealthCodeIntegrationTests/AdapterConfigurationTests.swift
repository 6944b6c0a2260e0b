import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import HealthCodeTestSupport
import Testing

/// The PostgreSQL client's and the topic's settings refuse values out of bounds by name, before
/// anything connects or is created. No server needed.
struct AdapterConfigurationTests {
    @Test("PostgreSQL settings out of bounds are refused by name; nil timeouts mean none")
    func postgresSettings() throws {
        try PostgresConfiguration().validate()
        var none = PostgresConfiguration()
        none.statementTimeout = nil
        none.lockTimeout = nil
        none.idleInTransactionTimeout = nil
        try none.validate()
        let cases: [(setting: String, change: (inout PostgresConfiguration) -> Void)] = [
            ("host", { $0.host = "" }),
            ("port", { $0.port = 0 }),
            ("database", { $0.database = "" }),
            ("maximumConnections", { $0.maximumConnections = 0 }),
            ("statementTimeout", { $0.statementTimeout = .zero }),
            ("lockTimeout", { $0.lockTimeout = .seconds(-1) }),
        ]
        for (expected, refusal) in refusals(of: PostgresConfiguration(), cases, validate: { try $0.validate() }) {
            #expect(refusal?.setting == expected)
            #expect(refusal?.description.hasPrefix("postgres setting \(expected) ") == true)
        }
    }

    @Test("topic settings out of bounds are refused by name")
    func topicSettings() throws {
        try EventTopicConfiguration().validate()
        let cases: [(setting: String, change: (inout EventTopicConfiguration) -> Void)] = [
            ("bootstrapServers", { $0.bootstrapServers = [] }),
            ("topic", { $0.topic = "" }),
            ("partitions", { $0.partitions = 0 }),
        ]
        for (expected, refusal) in refusals(of: EventTopicConfiguration(), cases, validate: { try $0.validate() }) {
            #expect(refusal?.setting == expected)
        }
    }
}
