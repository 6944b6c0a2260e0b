import HealthCodeCore
import HealthCodeGateway
import HealthCodeTestSupport
import Logging
import Testing

/// The gateway refuses a setting out of bounds before anything starts, naming the setting.
struct GatewayConfigurationTests {
    @Test("the defaults are valid; each setting out of bounds is refused by name")
    func settingsOutOfBounds() throws {
        try GatewayConfiguration().validate()
        let cases: [(setting: String, change: (inout GatewayConfiguration) -> Void)] = [
            ("bootstrapServers", { $0.bootstrapServers = [] }),
            ("topic", { $0.topic = "" }),
            ("port", { $0.port = 70_000 }),
            ("maximumBatchEvents", { $0.maximumBatchEvents = 0 }),
            ("maximumBodyBytes", { $0.maximumBodyBytes = 0 }),
            ("maximumClockSkew", { $0.maximumClockSkew = .seconds(-1) }),
            ("maximumConcurrentRequests", { $0.maximumConcurrentRequests = 0 }),
            ("publisherEventsPerSecond", { $0.publisherEventsPerSecond = 0 }),
            ("deliveryTimeout", { $0.deliveryTimeout = .zero }),
            ("produceLinger", { $0.produceLinger = .seconds(2) }),
            ("recentEventCapacity", { $0.recentEventCapacity = -1 }),
        ]
        for (expected, refusal) in refusals(of: GatewayConfiguration(), cases, validate: { try $0.validate() }) {
            #expect(refusal?.setting == expected)
            #expect(refusal?.description.hasPrefix("gateway setting \(expected) ") == true)
        }
    }

    @Test("the entry point refuses an invalid configuration before it creates anything")
    func entryPointValidates() throws {
        var configuration = GatewayConfiguration()
        configuration.maximumBatchEvents = 0
        #expect(throws: ConfigurationError.self) {
            _ = try Gateway.build(
                configuration: configuration,
                pseudonymizer: try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey()),
                publishers: InMemoryPublisherDirectory { [] },
                retractionTargets: InMemoryRetractionTargets(),
                logger: Logger(label: "test")
            )
        }
    }
}
