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
        let cases: [(String, (inout GatewayConfiguration) -> Void)] = [
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
        for (setting, change) in cases {
            var configuration = GatewayConfiguration()
            change(&configuration)
            #expect(throws: ConfigurationError.self) { try configuration.validate() }
            do {
                try configuration.validate()
            } catch {
                #expect(error.setting == setting)
                #expect(error.description.hasPrefix("gateway setting \(setting) "))
            }
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
