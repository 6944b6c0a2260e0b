/// How many overrides (`hc.review.v1`) a review office and each of its officers may apply per clock hour
/// on their own. An override beyond either quota is held until a second officer of the office approves
/// it: a bulk of overrides (codes set by hand for many people at once) needs two people.
public struct OverrideQuota: Sendable, Hashable {
    /// Overrides one officer may apply per clock hour.
    public var perOfficer: Int
    /// Overrides all officers of one office together may apply per clock hour.
    public var perOffice: Int

    public init(perOfficer: Int, perOffice: Int) {
        self.perOfficer = perOfficer
        self.perOffice = perOffice
    }

    /// The start of the clock hour (UTC) that `instant` falls in: the window the quotas count in.
    public static func window(of instant: Instant) -> Instant {
        let hour: Int64 = 3_600_000_000
        let micros = instant.microsecondsSinceEpoch
        let floored = micros >= 0 ? micros / hour * hour : ((micros + 1) / hour - 1) * hour
        return Instant(microsecondsSinceEpoch: floored)
    }

    /// Decides, in order, whether each override (named by its officer) applies or is held, given what
    /// the office already applied in the window; returns the decisions and the counts after them.
    /// Held overrides do not use up the quota.
    public func admit(_ officers: [String], applied: OverrideCounts) -> (applies: [Bool], applied: OverrideCounts) {
        var counts = applied
        var applies: [Bool] = []
        applies.reserveCapacity(officers.count)
        for officer in officers {
            let fits = counts.office < perOffice && counts.byOfficer[officer, default: 0] < perOfficer
            if fits { counts.byOfficer[officer, default: 0] += 1 }
            applies.append(fits)
        }
        return (applies, counts)
    }
}

/// Overrides an office applied in one window, by officer.
public struct OverrideCounts: Sendable, Hashable {
    public var byOfficer: [String: Int]

    public init(byOfficer: [String: Int] = [:]) { self.byOfficer = byOfficer }

    /// The office's total.
    public var office: Int { byOfficer.values.reduce(0, +) }
}

/// A valid, pseudonymised override the gateway is about to append, before the quotas are checked.
public struct PendingOverride: Sendable, Hashable {
    public var officer: String
    public var eventID: String
    /// The pseudonym.
    public var subject: String
    /// The canonical event JSON (``CloudEvent/jsonBytes()``), pseudonymised, `recordedtime` set.
    public var event: [UInt8]

    public init(officer: String, eventID: String, subject: String, event: [UInt8]) {
        self.officer = officer
        self.eventID = eventID
        self.subject = subject
        self.event = event
    }
}

/// What the quota ledger decided for one override.
public enum OverrideAdmission: Sendable, Hashable {
    /// Within the quotas: append it.
    case applied
    /// Beyond a quota: kept under this id until a second officer decides (also when it was held before).
    case held(id: Int64)
    /// Its officer is not registered under its office: reject it.
    case unregisteredOfficer
}

/// An override the gateway held, and what became of it.
public struct HeldReview: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable, CaseIterable {
        case held
        case approved
        case rejected
    }

    public var id: Int64
    /// The review office: the event's `source`.
    public var office: String
    /// The officer who decided the override.
    public var officer: String
    public var eventID: String
    /// The pseudonym.
    public var subject: String
    public var status: Status
    public var heldAt: Instant
    /// The second officer who approved or rejected it, and when.
    public var decidedBy: String?
    public var decidedAt: Instant?
    /// When the approved event was appended to the log; `nil` until then.
    public var publishedAt: Instant?
    /// The canonical event JSON as held (pseudonymised), without the approval.
    public var event: [UInt8]

    public init(
        id: Int64,
        office: String,
        officer: String,
        eventID: String,
        subject: String,
        status: Status,
        heldAt: Instant,
        decidedBy: String? = nil,
        decidedAt: Instant? = nil,
        publishedAt: Instant? = nil,
        event: [UInt8]
    ) {
        self.id = id
        self.office = office
        self.officer = officer
        self.eventID = eventID
        self.subject = subject
        self.status = status
        self.heldAt = heldAt
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
        self.publishedAt = publishedAt
        self.event = event
    }

    /// Why `officer` may not decide this override (approve or reject), or `nil` if it may: it must still
    /// be held, and the deciding officer must be registered under the same office (`registered`) and be
    /// another officer than the one who made the override (the second-officer rule).
    public func refusal(toDecideBy officer: String, registered: Set<String>) -> HeldReviewRefusal? {
        guard status == .held else { return .notHeld }
        guard registered.contains(officer) else { return .unregisteredOfficer }
        guard officer != self.officer else { return .sameOfficer }
        return nil
    }

    /// The event to append on approval: the held event with the approval in its data and `recordedtime`
    /// = the approval instant (the override counts as known from its approval on).
    public func approvedEvent() throws(EventValidationError) -> CloudEvent {
        var event = try EventDecoder.decode(event)
        guard case .review(var review) = event.payload, let decidedBy, let decidedAt else {
            throw EventValidationError(code: .invalidValue, fieldPath: "data", reason: "is not an approved review")
        }
        review.approval = ReviewApproval(officer: decidedBy, at: decidedAt)
        event.payload = .review(review)
        event.recordedTime = decidedAt
        return event
    }
}

/// Why a held override could not be decided by an officer.
public enum HeldReviewRefusal: String, Sendable, Hashable, Error {
    /// It is not (or no longer) held, or there is no such override.
    case notHeld = "not-held"
    /// The deciding officer is not registered under the override's office.
    case unregisteredOfficer = "unregistered-officer"
    /// The deciding officer made the override: a second officer must decide it.
    case sameOfficer = "same-officer"
}
