import Testing

@testable import HealthCodeCore

/// The hourly override quotas and the second-officer rule, without any store.
struct OverrideQuotaTests {
    @Test("overrides apply up to the officer's quota, then are held; held ones do not use the quota")
    func officerQuota() {
        let quota = OverrideQuota(perOfficer: 3, perOffice: 100)
        let (applies, after) = quota.admit(Array(repeating: "a", count: 5) + ["b"], applied: OverrideCounts())
        #expect(applies == [true, true, true, false, false, true])
        #expect(after.byOfficer == ["a": 3, "b": 1])
        // Later in the same hour the officer is still at its quota; another officer is not.
        let (later, _) = quota.admit(["a", "b"], applied: after)
        #expect(later == [false, true])
    }

    @Test("the office's quota holds overrides of every officer once reached")
    func officeQuota() {
        let quota = OverrideQuota(perOfficer: 10, perOffice: 4)
        let (applies, after) = quota.admit(
            ["a", "b", "a", "c", "c", "b"],
            applied: OverrideCounts(byOfficer: ["z": 1])
        )
        #expect(applies == [true, true, true, false, false, false])
        #expect(after.office == 4)
        #expect(quota.admit(["q"], applied: OverrideCounts()).applies == [true])
        #expect(OverrideQuota(perOfficer: 0, perOffice: 10).admit(["a"], applied: OverrideCounts()).applies == [false])
    }

    @Test("the window is the clock hour (UTC) of the instant")
    func windows() {
        #expect(OverrideQuota.window(of: instant("2020-04-03T10:59:59.999Z")) == instant("2020-04-03T10:00:00Z"))
        #expect(OverrideQuota.window(of: instant("2020-04-03T11:00:00Z")) == instant("2020-04-03T11:00:00Z"))
        let halfHourBeforeEpoch = Instant(microsecondsSinceEpoch: -1_800_000_000)
        #expect(OverrideQuota.window(of: halfHourBeforeEpoch) == Instant(microsecondsSinceEpoch: -3_600_000_000))
    }

    func held(status: HeldReview.Status = .held) -> HeldReview {
        let event = CloudEvent(
            id: "rv-1",
            source: "urn:hc:publisher:review",
            subject: "p-1",
            time: instant("2020-04-03T10:00:00Z"),
            recordedTime: instant("2020-04-03T10:00:01Z"),
            payload: .review(
                Review(status: .red, validUntil: instant("2020-04-10T10:00:00Z"), reason: "bulk", officer: "a")
            )
        )
        return HeldReview(
            id: 1,
            office: "urn:hc:publisher:review",
            officer: "a",
            eventID: "rv-1",
            subject: "p-1",
            status: status,
            heldAt: instant("2020-04-03T10:00:01Z"),
            event: event.jsonBytes()
        )
    }

    @Test("only another registered officer of the office may decide a held override, once")
    func secondOfficer() {
        #expect(held().refusal(toDecideBy: "a", registered: ["a", "b"]) == .sameOfficer)
        #expect(held().refusal(toDecideBy: "c", registered: ["a", "b"]) == .unregisteredOfficer)
        #expect(held().refusal(toDecideBy: "b", registered: ["a", "b"]) == nil)
        #expect(held(status: .rejected).refusal(toDecideBy: "b", registered: ["a", "b"]) == .notHeld)
    }

    @Test("the approved event carries the approval and is recorded when approved; it round-trips")
    func approvedEvent() throws {
        var review = held(status: .approved)
        review.decidedBy = "b"
        review.decidedAt = instant("2020-04-03T12:00:00Z")
        let event = try review.approvedEvent()
        guard case .review(let data) = event.payload else {
            Issue.record("not a review")
            return
        }
        #expect(data.approval == ReviewApproval(officer: "b", at: instant("2020-04-03T12:00:00Z")))
        #expect(event.recordedTime == instant("2020-04-03T12:00:00Z"))
        #expect(try EventDecoder.decode(event.jsonBytes()) == event)
        #expect(throws: EventValidationError.self) { try held().approvedEvent() }
    }
}
