import HealthCodeCore
import Testing

@testable import HealthCodeGateway

/// The batch answer is written by hand; its text is pinned here, keys sorted and absent fields omitted,
/// as the OpenAPI document (checked live by schemathesis) describes it.
struct BatchAnswerTests {
    @Test func everyKindOfResultIsWrittenWithSortedKeysAndNoAbsentFields() {
        var accepted = EventResult(index: 0, id: "lab-1", status: .accepted)
        accepted.partition = 3
        accepted.offset = 9_000_000_000
        var failed = EventResult(index: 2, id: "lab-\"3\"", status: .failed)
        failed.failure = "broker-unavailable"
        failed.retriable = true
        let rejected = EventResult(
            index: 1,
            id: nil,
            status: .rejected,
            problem: EventProblem(code: "forbidden-type", field: "type", reason: "may not publish 'x'\n")
        )
        var held = EventResult(index: 3, id: "review-4", status: .held)
        held.heldID = 7
        let answer = GatewayApplication.BatchResponse(
            accepted: 1,
            duplicate: 0,
            rejected: 1,
            failed: 1,
            held: 1,
            results: [accepted, rejected, failed, held]
        )
        let expected =
            #"{"accepted":1,"duplicate":0,"failed":1,"held":1,"rejected":1,"results":["#
            + #"{"id":"lab-1","index":0,"offset":9000000000,"partition":3,"status":"accepted"},"#
            + #"{"errors":[{"code":"forbidden-type","field":"type","reason":"may not publish 'x'\n"}],"#
            + #""index":1,"status":"rejected"},"#
            + #"{"failure":"broker-unavailable","id":"lab-\"3\"","index":2,"retriable":true,"status":"failed"},"#
            + #"{"heldId":7,"id":"review-4","index":3,"status":"held"}]}"#
        #expect(String(decoding: answer.jsonBytes(), as: UTF8.self) == expected)
    }
}
