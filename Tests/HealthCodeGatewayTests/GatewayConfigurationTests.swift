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
            ("overridesPerOfficerPerHour", { $0.overridesPerOfficerPerHour = -1 }),
            ("overridesPerOfficePerHour", { $0.overridesPerOfficePerHour = -1 }),
            ("heldReviewInterval", { $0.heldReviewInterval = .zero }),
            ("publicURL", { $0.publicURL = "" }),
            ("assertionAudience", { $0.assertionAudience = "" }),
        ]
        for (expected, refusal) in refusals(of: GatewayConfiguration(), cases, validate: { try $0.validate() }) {
            #expect(refusal?.setting == expected)
            #expect(refusal?.description.hasPrefix("gateway setting \(expected) ") == true)
        }
    }

    @Test("the default assertion audience is the deployment's own URL, unless one is configured")
    func deploymentAudience() {
        var configuration = GatewayConfiguration()
        #expect(configuration.effectiveAssertionAudience == "http://127.0.0.1:8080")
        configuration.publicURL = "https://gateway.gd.example"
        #expect(configuration.effectiveAssertionAudience == "https://gateway.gd.example")
        configuration.assertionAudience = "urn:hc:gateway:gd"
        #expect(configuration.effectiveAssertionAudience == "urn:hc:gateway:gd")
    }

    @Test("the entry point refuses an invalid configuration before it creates anything")
    func entryPointValidates() throws {
        var configuration = GatewayConfiguration()
        configuration.maximumBatchEvents = 0
        #expect(throws: ConfigurationError.self) {
            _ = try Gateway.build(
                configuration: configuration,
                pseudonymizer: try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey()),
                stores: .inMemory(publishers: { [] }),
                logger: Logger(label: "test")
            )
        }
    }
}
