import HealthCodeCore
import HealthCodeGateway
import HealthCodeTestSupport
import Logging
import Testing

/// Designations that would turn many people red are held for a second operator, not appended; approved ones
/// are appended by the release.
@Suite struct DesignationOversightTests {
    static let council = Publisher(id: "urn:hc:publisher:sc", eventTypes: ["hc.risk-area.v1", "hc.retraction.v1"])

    func designation(id: String, area: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:sc","type":"hc.risk-area.v1","subject":"\#(area)","time":"2020-04-01T00:00:00Z","data":{"level":"high","effectiveFrom":"2020-04-01T00:00:00Z"}}"#
    }

    func ingestion(_ log: IngestionTests.RecordingLog, _ designations: InMemoryDesignations) throws -> EventIngestion {
        EventIngestion(
            log: log,
            pseudonymizer: try Pseudonymizer(hexKey: GatewayTests.key),
            configuration: GatewayConfiguration(),
            retractionTargets: InMemoryRetractionTargets(),
            reviewOffices: InMemoryReviewOffices(),
            designations: designations,
            now: { GatewayTests.fixedNow },
            logger: Logger(label: "test")
        )
    }

    @Test("a designation the oversight holds is answered held with its id and not appended; others are appended")
    func held() async throws {
        let log = IngestionTests.RecordingLog()
        let designations = InMemoryDesignations(holding: ["420106"])
        let body = [designation(id: "d1", area: "420106"), designation(id: "d2", area: "110101")].joined(
            separator: "\n"
        )
        guard
            case .processed(let results) = await try ingestion(log, designations).ingest(
                Array(body.utf8),
                from: Self.council
            )
        else {
            Issue.record("the batch was not processed")
            return
        }
        #expect(results.map(\.status) == [.held, .accepted])
        #expect(results[0].heldID == 1 && results[0].offset == nil)
        #expect(log.records.withLock { $0.map(\.key) } == ["110101"])

        // Approved by a second operator, the release appends it once.
        let release = HeldDesignationRelease(
            designations: designations,
            log: log,
            interval: .seconds(5),
            logger: Logger(label: "t")
        )
        #expect(try await release.publishApproved() == (0, 0), "nothing approved yet")
        designations.approve(1)
        #expect(try await release.publishApproved() == (1, 0))
        #expect(try await release.publishApproved() == (0, 0))
        #expect(designations.published == [1])
        let appended = try log.records.withLock { try $0.map { try EventDecoder.decode($0.value) } }
        #expect(appended.map(\.id) == ["d2", "d1"])
        #expect(appended[1].recordedTime == GatewayTests.fixedNow, "recorded when the gateway accepted it")
    }

    @Test("a designation whose impact cannot be measured fails, retriable, and is not appended")
    func unmeasurable() async throws {
        let log = IngestionTests.RecordingLog()
        guard
            case .processed(let results) = await try ingestion(log, InMemoryDesignations(failing: true))
                .ingest(Array(designation(id: "d1", area: "420106").utf8), from: Self.council)
        else {
            Issue.record("the batch was not processed")
            return
        }
        #expect(results.map(\.status) == [.failed])
        #expect(results[0].failure == "designation-oversight-unavailable" && results[0].retriable == true)
        #expect(log.records.withLock { $0.isEmpty })
    }
}
