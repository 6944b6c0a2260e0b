import Testing

@testable import HealthCodeCore

/// One test per rule of docs/POLICY.md §3 and per boundary, on the reference rule set.
@Suite("Reference policy rules")
struct PolicyRuleTests {
    let t0 = instant("2020-04-01T00:00:00Z")

    @Test func noEventsIsGreenForever() {
        let decision = History().evaluate(at: t0)
        #expect(decision.status == .green)
        #expect(decision.validUntil == nil)
        #expect(decision.reasons.isEmpty)
        #expect(decision.ruleSetID == "reference-v1")
        #expect(decision.ruleSetHash == Repository.referenceRuleSet.contentHash)
    }

    @Test func positivePCRIsRedWithoutEnd() {
        var events = EventFactory()
        let history = History([events.test(.pcr, .positive, at: t0, id: "p")])
        let decision = history.evaluate(at: t0 + day * 30)
        #expect(decision.status == .red)
        #expect(decision.validUntil == nil)
        #expect(decision.reasons == [CodeReason(rule: "positive-pcr", colour: .red, until: nil, events: [ref("p")])])
    }

    @Test func negativesExactly24HoursApartClearThePositive() {
        var events = EventFactory()
        let n2 = t0 + day * 2
        let history = History([
            events.test(.pcr, .positive, at: t0, id: "p"),
            events.test(.pcr, .negative, at: t0 + day, id: "n1"),
            events.test(.pcr, .negative, at: n2, id: "n2"),
        ])
        #expect(history.evaluate(at: n2 - second).status == .red)
        let decision = history.evaluate(at: n2)
        #expect(decision.status == .yellow)
        #expect(decision.validUntil == n2 + day * 14)
        #expect(
            decision.reasons == [
                CodeReason(
                    rule: "recovery-observation",
                    colour: .yellow,
                    until: n2 + day * 14,
                    events: [ref("p"), ref("n1"), ref("n2")]
                )
            ]
        )
    }

    @Test func negativesLessThan24HoursApartDoNotClear() {
        var events = EventFactory()
        let history = History([
            events.test(.pcr, .positive, at: t0),
            events.test(.pcr, .negative, at: t0 + day),
            events.test(.pcr, .negative, at: t0 + day * 2 - second),
        ])
        #expect(history.evaluate(at: t0 + day * 5).status == .red)
    }

    @Test func negativeAtTheTimeOfThePositiveDoesNotCountAsFirstNegative() {
        var events = EventFactory()
        let history = History([
            events.test(.pcr, .positive, at: t0, id: "a"),
            events.test(.pcr, .negative, at: t0, id: "b"),
            events.test(.pcr, .negative, at: t0 + day, id: "c"),
        ])
        #expect(history.evaluate(at: t0 + day * 2).status == .red)
    }

    @Test func clearanceUsesTheEarliestQualifyingSecondNegative() {
        var events = EventFactory()
        let history = History([
            events.test(.pcr, .positive, at: t0),
            events.test(.pcr, .negative, at: t0 + hour),
            events.test(.pcr, .negative, at: t0 + hour * 12),
            events.test(.pcr, .negative, at: t0 + hour * 25, id: "n2"),
            events.test(.pcr, .negative, at: t0 + hour * 40),
        ])
        let decision = history.evaluate(at: t0 + day * 3)
        #expect(decision.validUntil == t0 + hour * 25 + day * 14)
        #expect(decision.reasons.first?.events.last == ref("n2"))
    }

    @Test func recoveryObservationEndsExactly14DaysAfterClearance() {
        var events = EventFactory()
        let c = t0 + day * 2
        let history = History([
            events.test(.pcr, .positive, at: t0),
            events.test(.pcr, .negative, at: t0 + day),
            events.test(.pcr, .negative, at: c),
        ])
        #expect(history.evaluate(at: c + day * 14 - second).status == .yellow)
        let after = history.evaluate(at: c + day * 14)
        #expect(after.status == .green)
        #expect(after.reasons.isEmpty)
    }

    @Test func aNewPositiveAfterClearanceIsRedAgain() {
        var events = EventFactory()
        let history = History([
            events.test(.pcr, .positive, at: t0),
            events.test(.pcr, .negative, at: t0 + day),
            events.test(.pcr, .negative, at: t0 + day * 2),
            events.test(.pcr, .positive, at: t0 + day * 3, id: "again"),
        ])
        let decision = history.evaluate(at: t0 + day * 4)
        #expect(decision.status == .red)
        #expect(decision.reasons.map(\.rule) == ["positive-pcr"])
    }

    @Test func positiveAntigenIsYellowFor14Days() {
        var events = EventFactory()
        let history = History([events.test(.antigen, .positive, at: t0, id: "a")])
        #expect(history.evaluate(at: t0).status == .yellow)
        let decision = history.evaluate(at: t0 + day * 14 - second)
        #expect(decision.status == .yellow)
        #expect(decision.validUntil == t0 + day * 14)
        #expect(history.evaluate(at: t0 + day * 14).status == .green)
    }

    @Test func negativePCRAfterPositiveAntigenCancelsIt() {
        var events = EventFactory()
        let history = History([
            events.test(.pcr, .negative, at: t0 - hour),
            events.test(.antigen, .positive, at: t0),
        ])
        #expect(history.evaluate(at: t0 + hour).status == .yellow, "a negative PCR before the antigen test counts not")
        var later = history
        later.apply(events.test(.pcr, .negative, at: t0 + hour * 2))
        #expect(later.evaluate(at: t0 + hour).status == .yellow, "the negative PCR has not happened yet at `at`")
        #expect(later.evaluate(at: t0 + hour * 2).status == .green)
    }

    @Test func negativeAntigenDoesNotCancelPositiveAntigen() {
        var events = EventFactory()
        let history = History([
            events.test(.antigen, .positive, at: t0),
            events.test(.antigen, .negative, at: t0 + hour),
        ])
        #expect(history.evaluate(at: t0 + hour * 2).status == .yellow)
    }

    @Test func closeContactIsRedOnHalfOpen14Days() {
        var events = EventFactory()
        let history = History([events.exposure(.closeContact, at: t0, id: "x")])
        #expect(history.evaluate(at: t0 - second).status == .green)
        let start = history.evaluate(at: t0)
        #expect(start.status == .red)
        #expect(start.validUntil == t0 + day * 14)
        #expect(
            start.reasons == [CodeReason(rule: "close-contact", colour: .red, until: t0 + day * 14, events: [ref("x")])]
        )
        #expect(history.evaluate(at: t0 + day * 14 - .microseconds(1)).status == .red)
        #expect(history.evaluate(at: t0 + day * 14).status == .green)
    }

    @Test func secondaryContactIsYellowFor7Days() {
        var events = EventFactory()
        let history = History([events.exposure(.secondaryContact, at: t0)])
        #expect(history.evaluate(at: t0 + day * 7 - second).status == .yellow)
        #expect(history.evaluate(at: t0 + day * 7).status == .green)
    }

    @Test func overlappingContactsExtendTheCodeAndAreCitedTogether() {
        var events = EventFactory()
        let history = History([
            events.exposure(.closeContact, at: t0, id: "x1"),
            events.exposure(.closeContact, at: t0 + day * 3, id: "x2"),
            events.exposure(.secondaryContact, at: t0 + day * 4, id: "x3"),
        ])
        let decision = history.evaluate(at: t0 + day * 5)
        #expect(decision.status == .red)
        #expect(decision.validUntil == t0 + day * 17)
        #expect(decision.reasons.map(\.rule) == ["close-contact", "secondary-contact"])
        #expect(decision.reasons[0].events == [ref("x1"), ref("x2")])
        #expect(decision.reasons[0].until == t0 + day * 17)
    }

    @Test func redEndingOnAYellowContinuesAsYellow() {
        var events = EventFactory()
        let history = History([
            events.exposure(.closeContact, at: t0),
            events.test(.antigen, .positive, at: t0 + day * 10),
        ])
        let decision = history.evaluate(at: t0 + day * 11)
        #expect(decision.status == .red)
        #expect(decision.validUntil == t0 + day * 14)
        #expect(history.evaluate(at: t0 + day * 14).status == .yellow)
    }

    @Test func highRiskCityCoversItsDistrictsFor14DaysFromArrival() {
        var events = EventFactory()
        let arrival = t0 + hour * 5
        let history = History([
            events.designation("440100", .high, from: t0 - day, issued: t0 - day, id: "gz-high"),
            events.travel(from: "110105", to: "440106", at: t0, arrivedAt: arrival, id: "trip"),
        ])
        let beforeArrival = history.evaluate(at: t0 + hour)
        #expect(beforeArrival.status == .green)
        #expect(beforeArrival.validUntil == arrival, "the arrival starts the rule")
        let decision = history.evaluate(at: arrival)
        #expect(decision.status == .yellow)
        #expect(decision.validUntil == arrival + day * 14)
        #expect(
            decision.reasons == [
                CodeReason(
                    rule: "high-risk-presence",
                    colour: .yellow,
                    until: arrival + day * 14,
                    events: [ref("gz-high"), ref("trip")]
                )
            ]
        )
    }

    @Test func provinceDesignationCoversCitiesAndDistricts() {
        var events = EventFactory()
        let history = History([
            events.designation("440000", .medium, from: t0 - day, issued: t0 - day),
            events.declaration([], location: "440106", at: t0),
        ])
        let decision = history.evaluate(at: t0 + day)
        #expect(decision.reasons.map(\.rule) == ["medium-risk-presence"])
        #expect(decision.validUntil == t0 + day * 7)
    }

    @Test func aDistrictDesignationDoesNotCoverItsCityOrSiblings() {
        var events = EventFactory()
        let history = History([
            events.designation("440106", .high, from: t0 - day, issued: t0 - day),
            events.declaration([], location: "440100", at: t0),
            events.declaration([], location: "440103", at: t0 + hour),
        ])
        #expect(history.evaluate(at: t0 + day).status == .green)
    }

    @Test func theHighestLevelAlongTheHierarchyWins() {
        var events = EventFactory()
        let history = History([
            events.designation("440000", .high, from: t0 - day, issued: t0 - day, id: "province"),
            events.designation("440106", .low, from: t0 - day, issued: t0 - hour, id: "district"),
            events.declaration([], location: "440106", at: t0, id: "here"),
        ])
        let decision = history.evaluate(at: t0 + day)
        #expect(decision.reasons.map(\.rule) == ["high-risk-presence"])
        #expect(decision.reasons.first?.events == [ref("province"), ref("here")])
    }

    @Test func aLaterDesignationForTheSameCodeSupersedesAnEarlierOne() {
        var events = EventFactory()
        let lifted = t0 + day * 2
        let history = History([
            events.designation("440106", .high, from: t0, issued: t0),
            events.designation("440106", .low, from: lifted, issued: lifted - hour),
            events.declaration([], location: "440106", at: t0 + day),
            events.declaration([], location: "440106", at: lifted + hour, id: "late"),
        ])
        let decision = history.evaluate(at: lifted + hour * 2)
        #expect(decision.status == .yellow, "the presence before the lift still counts")
        #expect(decision.validUntil == t0 + day + day * 14)
        #expect(!decision.reasons[0].events.contains(ref("late")))
    }

    @Test func designationsAreHalfOpenAndNeedToBeIssuedByAt() {
        var events = EventFactory()
        let until = t0 + day * 3
        let history = History([
            events.designation("440106", .high, from: t0, until: until, issued: t0 + hour),
            events.declaration([], location: "440106", at: t0, id: "before-issue"),
            events.declaration([], location: "440106", at: until, id: "at-end"),
        ])
        #expect(history.evaluate(at: t0 + second * 1800).status == .green, "not yet issued at `at`")
        let decision = history.evaluate(at: until + hour)
        #expect(decision.reasons.first?.events.contains(ref("before-issue")) == true)
        #expect(decision.reasons.first?.events.contains(ref("at-end")) == false)
    }

    @Test func symptomsOrFeverFrom37Point3DegreesAreYellowFor14Days() {
        var events = EventFactory()
        let fever = History([events.declaration([], temperature: 37.3, at: t0)])
        #expect(fever.evaluate(at: t0).status == .yellow)
        #expect(fever.evaluate(at: t0).validUntil == t0 + day * 14)
        let normal = History([events.declaration([], temperature: 37.2, at: t0)])
        #expect(normal.evaluate(at: t0).status == .green)
        let cough = History([events.declaration([.cough], at: t0)])
        #expect(cough.evaluate(at: t0 + day * 14 - second).status == .yellow)
        #expect(cough.evaluate(at: t0 + day * 14).status == .green)
    }

    @Test func negativePCRAfterADeclarationCancelsSymptoms() {
        var events = EventFactory()
        var history = History([events.declaration([.fever], at: t0)])
        history.apply(events.test(.pcr, .negative, at: t0))
        #expect(history.evaluate(at: t0 + hour).status == .yellow, "a negative at the same instant is not after it")
        history.apply(events.test(.pcr, .negative, at: t0 + hour))
        #expect(history.evaluate(at: t0 + hour).status == .green)
    }

    @Test func reviewOverridesComputedColourUntilItsValidUntil() {
        var events = EventFactory()
        let history = History([
            events.exposure(.closeContact, at: t0, id: "x"),
            events.review(.green, at: t0 + day, until: t0 + day * 3, id: "rv"),
        ])
        let decision = history.evaluate(at: t0 + day * 2)
        #expect(decision.status == .green)
        #expect(decision.validUntil == t0 + day * 3)
        #expect(decision.reasons.map(\.rule) == ["review", "close-contact"], "the override first, then every rule")
        #expect(
            decision.reasons[0] == CodeReason(rule: "review", colour: .green, until: t0 + day * 3, events: [ref("rv")])
        )
        #expect(history.evaluate(at: t0 + day * 3).status == .red)
    }

    @Test func aNewerReviewSupersedesAnOlderOneEvenAfterItExpires() {
        var events = EventFactory()
        let history = History([
            events.review(.red, at: t0, until: t0 + day * 10, id: "old"),
            events.review(.yellow, at: t0 + day, until: t0 + day * 2, id: "new"),
        ])
        let during = history.evaluate(at: t0 + day + hour)
        #expect(during.status == .yellow)
        #expect(during.validUntil == t0 + day * 2)
        #expect(history.evaluate(at: t0 + day * 3).status == .green, "the older review does not come back")
    }

    @Test func betweenTwoReviewsAtTheSameTimeTheGreaterIDIsLater() {
        var events = EventFactory()
        let history = History([
            events.review(.red, at: t0, until: t0 + day, id: "b"),
            events.review(.green, at: t0, until: t0 + day, id: "a"),
        ])
        #expect(history.evaluate(at: t0).status == .red)
    }

    @Test func aRetractionBySameSourceDropsTheEvent() {
        var events = EventFactory()
        let history = History([
            events.exposure(.closeContact, at: t0, id: "x"),
            events.retraction(of: "x", at: t0 + day),
        ])
        #expect(history.evaluate(at: t0 + day - second).status == .red, "not yet retracted")
        let decision = history.evaluate(at: t0 + day)
        #expect(decision.status == .green)
        #expect(decision.validUntil == nil)
    }

    @Test func aRetractionByAnotherSourceIsIgnored() {
        var events = EventFactory()
        let history = History([
            events.exposure(.closeContact, at: t0, id: "x"),
            events.retraction(of: "x", at: t0 + day, source: "urn:hc:publisher:someone-else"),
        ])
        #expect(history.evaluate(at: t0 + day * 2).status == .red)
    }

    @Test func aRetractedDesignationNoLongerSetsTheLevel() {
        var events = EventFactory()
        let history = History([
            events.designation("440106", .high, from: t0, issued: t0, id: "wrong"),
            events.declaration([], location: "440106", at: t0 + hour),
            events.retraction(of: "wrong", at: t0 + day, subject: "440106"),
        ])
        #expect(history.evaluate(at: t0 + hour * 2).status == .yellow)
        #expect(history.evaluate(at: t0 + day).status == .green)
    }

    @Test func retractingAReviewRevealsTheEarlierOne() {
        var events = EventFactory()
        let history = History([
            events.review(.red, at: t0, until: t0 + day * 10, id: "first"),
            events.review(.green, at: t0 + day, until: t0 + day * 10, id: "mistake"),
            events.retraction(of: "mistake", at: t0 + day * 2),
        ])
        #expect(history.evaluate(at: t0 + day * 3).status == .red)
    }

    @Test func knownAtHidesLateRecordedEvents() {
        var events = EventFactory()
        let history = History([
            events.test(.pcr, .positive, at: t0, id: "late", recorded: t0 + day * 2)
        ])
        #expect(history.evaluate(at: t0 + day).status == .green, "knownAt defaults to at")
        #expect(history.evaluate(at: t0 + day, knownAt: t0 + day * 2 - second).status == .green)
        #expect(history.evaluate(at: t0 + day, knownAt: t0 + day * 2).status == .red, "as known later")
        #expect(history.evaluate(at: t0 + day * 3, knownAt: t0 + day).status == .green, "as known earlier")
    }

    @Test func knownAtAlsoAppliesToDesignationsAndRetractions() {
        var events = EventFactory()
        var retraction = events.retraction(of: "x", at: t0 + day)
        retraction.recordedTime = t0 + day * 5
        let history = History([
            events.exposure(.closeContact, at: t0, id: "x"),
            retraction,
            events.designation("440106", .high, from: t0, issued: t0, recorded: t0 + day * 5),
            events.declaration([], location: "440106", at: t0 + hour),
        ])
        let early = history.evaluate(at: t0 + day * 2)
        #expect(early.reasons.map(\.rule) == ["close-contact"])
        let late = history.evaluate(at: t0 + day * 2, knownAt: t0 + day * 5)
        #expect(late.reasons.map(\.rule) == ["high-risk-presence"])
    }

    @Test func eventsRecordedAfterKnownAtDoNotShortenValidUntil() {
        var events = EventFactory()
        let history = History([events.exposure(.closeContact, at: t0 + day)])
        let decision = history.evaluate(at: t0)
        #expect(decision.status == .green)
        #expect(decision.validUntil == nil, "recorded at its time, after knownAt: not known")
    }

    /// The worked example of docs/POLICY.md §3.5.
    @Test func validUntilAsKnownLaterEndsWhenAKnownEventHappens() {
        var events = EventFactory()
        let history = History([
            events.test(
                .pcr,
                .positive,
                at: instant("2020-03-02T00:00:00Z"),
                recorded: instant("2020-03-02T01:00:00Z")
            )
        ])
        let at = instant("2020-03-01T12:00:00Z")
        let asKnownLater = history.evaluate(at: at, knownAt: instant("2020-03-05T00:00:00Z"))
        #expect(asKnownLater.status == .green)
        #expect(asKnownLater.validUntil == instant("2020-03-02T00:00:00Z"))
        #expect(asKnownLater.reasons.isEmpty)
        let asKnownThen = history.evaluate(at: at, knownAt: at)
        #expect(asKnownThen.status == .green)
        #expect(asKnownThen.validUntil == nil)
        let asKnownBeforeItWasRecorded = history.evaluate(at: at, knownAt: instant("2020-03-02T00:30:00Z"))
        #expect(asKnownBeforeItWasRecorded.validUntil == nil, "recorded at 01:00, after knownAt")
    }

    @Test func anEventPublishedAheadOfTheClockEndsTheLiveCodeWhenItHappens() {
        var events = EventFactory()
        let now = t0 + hour
        let history = History([
            events.test(.pcr, .positive, at: now + .seconds(60), recorded: now)
        ])
        let live = history.evaluate(at: now)
        #expect(live.status == .green)
        #expect(live.validUntil == now + .seconds(60))
        #expect(history.evaluate(at: now + .seconds(60)).status == .red)
        #expect(history.evaluate(at: now + .seconds(60)).validUntil == nil)
    }

    @Test func aLaterKnownEventThatChangesNothingDoesNotEndTheCode() {
        var events = EventFactory()
        let history = History([
            events.exposure(.closeContact, at: t0),
            events.test(.pcr, .negative, at: t0 + day, recorded: t0),
        ])
        let decision = history.evaluate(at: t0)
        #expect(decision.status == .red)
        #expect(decision.validUntil == t0 + day * 14)
    }

    @Test func aLaterKnownRetractionEndsTheCodeAtItsTime() {
        var events = EventFactory()
        var retraction = events.retraction(of: "x", at: t0 + day * 3)
        retraction.recordedTime = t0 + day * 4
        let history = History([events.exposure(.closeContact, at: t0, id: "x"), retraction])
        #expect(history.evaluate(at: t0 + day).validUntil == t0 + day * 14, "the retraction is not known yet")
        let asKnownLater = history.evaluate(at: t0 + day, knownAt: t0 + day * 4)
        #expect(asKnownLater.status == .red)
        #expect(asKnownLater.validUntil == t0 + day * 3)
        #expect(asKnownLater.reasons.first?.until == t0 + day * 14, "a reason's end looks only at events by at")
    }

    @Test func aLaterKnownDesignationEndsTheCodeWhenItIsIssued() {
        var events = EventFactory()
        let history = History([
            events.declaration([], location: "440106", at: t0),
            // Issued two days later, effective from before the presence: from its issue on, the presence was
            // in a high-risk area.
            events.designation("440100", .high, from: t0 - day, issued: t0 + day * 2, recorded: t0 + day * 2),
        ])
        #expect(history.evaluate(at: t0 + day).validUntil == nil)
        let asKnownLater = history.evaluate(at: t0 + day, knownAt: t0 + day * 3)
        #expect(asKnownLater.status == .green)
        #expect(asKnownLater.validUntil == t0 + day * 2)
        let then = history.evaluate(at: t0 + day * 2, knownAt: t0 + day * 3)
        #expect(then.status == .yellow)
        #expect(then.validUntil == t0 + day * 14)
    }

    func ref(_ id: String) -> EventReference { EventReference(source: "urn:hc:publisher:test", id: id) }
}

@Suite("Evaluation output")
struct EvaluationLineTests {
    @Test func linesFollowPolicySection4() {
        let t0 = instant("2020-04-01T00:00:00Z")
        var events = EventFactory()
        events.subject = "p\"1"
        let history = History([
            events.exposure(.closeContact, at: t0 + .milliseconds(250), id: "x"),
            events.review(.yellow, at: t0 + hour, until: t0 + day, id: "rv"),
        ])
        let line = history.evaluate(at: t0 + hour).evaluationLine(subject: events.subject)
        #expect(
            String(decoding: line, as: UTF8.self)
                == #"{"subject":"p\"1","status":"yellow","validUntil":"2020-04-02T00:00:00Z","reasons":["#
                + #"{"rule":"review","colour":"yellow","until":"2020-04-02T00:00:00Z","events":[{"source":"urn:hc:publisher:test","id":"rv"}]},"#
                + #"{"rule":"close-contact","colour":"red","until":"2020-04-15T00:00:00Z","events":[{"source":"urn:hc:publisher:test","id":"x"}]}]}"#
        )
        let green = History().evaluate(at: t0).evaluationLine(subject: "p-2")
        #expect(
            String(decoding: green, as: UTF8.self)
                == #"{"subject":"p-2","status":"green","validUntil":null,"reasons":[]}"#
        )
    }
}
