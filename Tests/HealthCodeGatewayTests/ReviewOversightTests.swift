import Foundation
import HTTPTypes
import HealthCodeCore
import HealthCodeTestSupport
import JWTKit
import Logging
import NIOCore
import Testing

@testable import HealthCodeGateway

/// Overrides need a registered officer and are held over the hourly quotas; client assertions are
/// used once, for this deployment only.
@Suite struct ReviewOversightTests {
    let gateway = GatewayTests()
    static let office = "urn:hc:publisher:review"
    static let bearer = "Bearer \(GatewayTests.reviewAPIKey)"

    func review(id: String, officer: String = "officer-a", extra: String = "") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"\#(Self.office)","type":"hc.review.v1","subject":"ID-\#(id)","time":"2020-04-03T08:00:00Z","data":{"status":"red","validUntil":"2020-04-10T08:00:00Z","reason":"checked","officer":"\#(officer)"\#(extra)}}"#
    }

    @Test("a review of an unregistered officer is rejected on data.officer; a batch of only those is 422")
    func unregisteredOfficer() async throws {
        let offices = InMemoryReviewOffices(officers: [Self.office: ["officer-a"]])
        try await gateway.withGateway(reviewOffices: offices) { client, _, _ in
            let (status, answer, _) = try await gateway.post(
                client,
                review(id: "r1", officer: "officer-x"),
                authorization: Self.bearer
            )
            #expect(status == .unprocessableContent)
            #expect(answer?.results.first?.errors?.first?.code == "unregistered-officer")
            #expect(answer?.results.first?.errors?.first?.field == "data.officer")
            let (ok, okAnswer, _) = try await gateway.post(client, review(id: "r2"), authorization: Self.bearer)
            #expect(ok == .accepted)
            #expect(okAnswer?.accepted == 1)
        }
    }

    @Test("overrides beyond the officer's quota are answered held with an id and not appended")
    func heldOverQuota() async throws {
        var configuration = GatewayConfiguration()
        configuration.overridesPerOfficerPerHour = 2
        let offices = InMemoryReviewOffices(officers: [Self.office: ["officer-a", "officer-b"]])
        try await gateway.withGateway(configuration: configuration, reviewOffices: offices) { client, _, _ in
            let batch = (0..<5).map { review(id: "q\($0)") }.joined(separator: "\n")
            let (status, answer, _) = try await gateway.post(client, batch, authorization: Self.bearer)
            #expect(status == .accepted)
            #expect(answer?.accepted == 2)
            #expect(answer?.held == 3)
            #expect(answer?.results.map(\.status) == ["accepted", "accepted", "held", "held", "held"])
            #expect(answer?.results.suffix(3).allSatisfy { $0.heldId != nil && $0.offset == nil } == true)
            // Only held: still 202 (they are kept), and sent again they stay held, once.
            let (again, againAnswer, _) = try await gateway.post(
                client,
                review(id: "q3"),
                authorization: Self.bearer
            )
            #expect(again == .accepted)
            #expect(againAnswer?.results.first?.status == "held")
            #expect(offices.held.count == 3)
            // The held events are pseudonymised, as they would have been appended.
            #expect(offices.held.allSatisfy { Pseudonymizer.isPseudonym($0.subject) })
            #expect(offices.held.allSatisfy { !String(decoding: $0.event, as: UTF8.self).contains("ID-q") })
            // Another officer has a quota of its own.
            let (other, otherAnswer, _) = try await gateway.post(
                client,
                review(id: "b1", officer: "officer-b"),
                authorization: Self.bearer
            )
            #expect(other == .accepted)
            #expect(otherAnswer?.accepted == 1)
        }
    }

    @Test("a publisher may not send the approval fields only the gateway sets")
    func approvalFieldsAreTheGateways() async throws {
        let offices = InMemoryReviewOffices(officers: [Self.office: ["officer-a"]])
        try await gateway.withGateway(reviewOffices: offices) { client, _, _ in
            let forged = review(
                id: "f1",
                extra: #","approvedBy":"officer-b","approvedAt":"2020-04-03T08:30:00Z""#
            )
            let (status, answer, _) = try await gateway.post(client, forged, authorization: Self.bearer)
            #expect(status == .unprocessableContent)
            #expect(answer?.results.first?.errors?.first?.code == "gateway-field")
        }
    }

    @Test("approval appends the held event with the approver, once; a failed append is retried")
    func release() async throws {
        let offices = InMemoryReviewOffices(officers: [Self.office: ["officer-a", "officer-b"]])
        let pending = PendingOverride(
            officer: "officer-a",
            eventID: "h1",
            subject: "p-1",
            event: try EventDecoder.decode(Array(review(id: "h1").utf8)).jsonBytes()
        )
        let admissions = try await offices.admit(
            [pending],
            office: Self.office,
            window: GatewayTests.fixedNow,
            quota: OverrideQuota(perOfficer: 0, perOffice: 0)
        )
        #expect(admissions == [.held(id: 1)])
        let log = IngestionTests.RecordingLog()
        let release = HeldReviewRelease(offices: offices, log: log, interval: .seconds(1), logger: Logger(label: "t"))
        #expect(try await release.publishApproved() == .init(published: 0, failed: 0))
        offices.approve(1, by: "officer-b", at: GatewayTests.fixedNow)
        #expect(try await release.publishApproved() == .init(published: 1, failed: 0))
        #expect(try await release.publishApproved() == .init(published: 0, failed: 0))
        let appended = try EventDecoder.decode(try #require(log.records.withLock { $0.first?.value }))
        guard case .review(let data) = appended.payload else {
            Issue.record("not a review")
            return
        }
        #expect(data.approval?.officer == "officer-b")
        #expect(appended.recordedTime == GatewayTests.fixedNow)
    }

    // MARK: Client assertions

    func assertion(
        audience: String = GatewayConfiguration().effectiveAssertionAudience,
        id: String?
    ) async throws
        -> String
    {
        "Bearer "
            + (try await ClientAssertion.sign(
                publisher: "urn:hc:publisher:cdc",
                audience: audience,
                privateKey: GatewayTests.cdcKey,
                id: id
            ))
    }

    func exposure(id: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:cdc","type":"hc.exposure.v1","subject":"ID-1","time":"2020-04-03T08:00:00Z","data":{"kind":"close-contact"}}"#
    }

    @Test("a replayed client assertion is 401 replayed-credentials; a fresh one per request is accepted")
    func replayedAssertion() async throws {
        try await gateway.withGateway { client, _, _ in
            let once = try await assertion(id: UUID().uuidString)
            #expect(try await gateway.post(client, exposure(id: "j1"), authorization: once).0 == .accepted)
            let (replayed, _, response) = try await gateway.post(client, exposure(id: "j2"), authorization: once)
            #expect(replayed == .unauthorized)
            let problem =
                try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            #expect(problem?["type"] as? String == "urn:hc:problem:replayed-credentials")
            let fresh = try await assertion(id: UUID().uuidString)
            #expect(try await gateway.post(client, exposure(id: "j3"), authorization: fresh).0 == .accepted)
        }
    }

    @Test("an assertion without jti, or made for another deployment's audience, is 401")
    func missingJTIAndOtherDeployment() async throws {
        try await gateway.withGateway { client, _, _ in
            let noJTI = try await assertion(id: nil)
            #expect(try await gateway.post(client, exposure(id: "m1"), authorization: noJTI).0 == .unauthorized)
            let otherDeployment = try await assertion(audience: "https://gateway.other-region.example", id: "x-1")
            #expect(
                try await gateway.post(client, exposure(id: "m2"), authorization: otherDeployment).0 == .unauthorized
            )
            // The former fixed default audience is no longer anyone's.
            let formerDefault = try await assertion(audience: "urn:hc:gateway", id: "x-2")
            #expect(
                try await gateway.post(client, exposure(id: "m3"), authorization: formerDefault).0 == .unauthorized
            )
        }
    }
}
