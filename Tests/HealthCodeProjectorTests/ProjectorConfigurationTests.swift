import HealthCodeCore
import HealthCodeProjector
import HealthCodeTestSupport
import Testing

/// The projector refuses a setting out of bounds before anything starts, naming the setting.
struct ProjectorConfigurationTests {
    @Test("the defaults are valid; each setting out of bounds is refused by name")
    func settingsOutOfBounds() throws {
        try ProjectorConfiguration().validate()
        let cases: [(setting: String, change: (inout ProjectorConfiguration) -> Void)] = [
            ("bootstrapServers", { $0.bootstrapServers = [] }),
            ("topic", { $0.topic = "" }),
            ("group", { $0.group = "" }),
            ("batchSize", { $0.batchSize = 0 }),
            ("maximumBatchesInFlight", { $0.maximumBatchesInFlight = 0 }),
            ("heartbeatInterval", { $0.heartbeatInterval = $0.sessionTimeout }),
            ("transactionTimeout", { $0.transactionTimeout = .zero }),
            ("maximumRetryDelay", { $0.maximumRetryDelay = .milliseconds(1) }),
            ("unassignedAfter", { $0.unassignedAfter = .zero }),
            ("fetchMinBytes", { $0.fetchMinBytes = 0 }),
            ("fetchMaxWait", { $0.fetchMaxWait = .seconds(11) }),
            ("stallAfter", { $0.stallAfter = .zero }),
            ("reportInterval", { $0.reportInterval = .milliseconds(10) }),
        ]
        for (expected, refusal) in refusals(of: ProjectorConfiguration(), cases, validate: { try $0.validate() }) {
            #expect(refusal?.setting == expected)
            #expect(refusal?.description.hasPrefix("projector setting \(expected) ") == true)
        }
    }
}
