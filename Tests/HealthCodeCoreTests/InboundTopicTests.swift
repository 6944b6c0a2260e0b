import HealthCodeCore
import Testing

@Suite("Inbound topic names")
struct InboundTopicTests {
    @Test("a publisher's default inbound topic drops the urn prefix and replaces what Kafka refuses")
    func defaultNames() {
        #expect(InboundTopic.name(forPublisher: "urn:hc:publisher:gd-transport") == "healthcode.inbound.gd-transport")
        #expect(InboundTopic.name(forPublisher: "urn:other:lab net/1") == "healthcode.inbound.urn_other_lab_net_1")
        #expect(InboundTopic.name(forPublisher: String(repeating: "x", count: 500)).count == 200)
        #expect(InboundTopic.isValid(InboundTopic.name(forPublisher: "urn:hc:publisher:gd-transport")))
    }

    @Test("only names under the prefix, of Kafka's characters, are inbound topics; rejects go alongside")
    func validity() {
        #expect(!InboundTopic.isValid("healthcode.events"))
        #expect(!InboundTopic.isValid("healthcode.inbound."))
        #expect(!InboundTopic.isValid("healthcode.inbound.a b"))
        #expect(!InboundTopic.isValid("healthcode.inbound." + String(repeating: "y", count: 200)))
        #expect(InboundTopic.rejects(ofInbound: "healthcode.inbound.gd-transport") == "healthcode.rejects.gd-transport")
    }
}
