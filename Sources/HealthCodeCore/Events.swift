/// The event types of the contract (docs/POLICY.md §2). Each type string carries its version; when a v2 of a type
/// is published, the decoder upcasts v1 events into the current payload model, so the fold and the policy
/// only ever see one shape per type (see schemas/README.md).
public enum EventType: String, Sendable, Codable, CaseIterable {
    case testResult = "hc.test-result.v1"
    case travel = "hc.travel.v1"
    case declaration = "hc.declaration.v1"
    case exposure = "hc.exposure.v1"
    case riskArea = "hc.risk-area.v1"
    case review = "hc.review.v1"
    case retraction = "hc.retraction.v1"
}

/// `hc.test-result.v1`: a laboratory or rapid test; the event `time` is the sample time.
public struct TestResult: Sendable, Hashable {
    /// The kind of test.
    public enum Method: String, Sendable, Hashable, Codable, CaseIterable {
        case pcr
        case antigen
    }

    /// The test's outcome.
    public enum Outcome: String, Sendable, Hashable, Codable, CaseIterable {
        case positive
        case negative
    }

    public var test: Method
    public var result: Outcome
    /// The laboratory or testing site.
    public var lab: String

    public init(test: Method, result: Outcome, lab: String) {
        self.test = test
        self.result = result
        self.lab = lab
    }
}

/// `hc.travel.v1`: a journey; the event `time` is the departure.
public struct Travel: Sendable, Hashable {
    /// The means of transport.
    public enum Mode: String, Sendable, Hashable, Codable, CaseIterable {
        case train
        case flight
        case bus
        case ship
        case car
        case metro
    }

    public var mode: Mode
    /// Airline, railway or operator, when known.
    public var carrier: String?
    public var from: AreaCode
    public var to: AreaCode
    /// Arrival at `to`; never before the departure.
    public var arrivedAt: Instant

    public init(mode: Mode, carrier: String? = nil, from: AreaCode, to: AreaCode, arrivedAt: Instant) {
        self.mode = mode
        self.carrier = carrier
        self.from = from
        self.to = to
        self.arrivedAt = arrivedAt
    }
}

/// `hc.declaration.v1`: a self-declaration of health; the event `time` is the declaration time.
public struct Declaration: Sendable, Hashable {
    /// A declared symptom.
    public enum Symptom: String, Sendable, Hashable, Codable, CaseIterable {
        case fever
        case cough
        case fatigue
        case soreThroat = "sore-throat"
        case lossOfTasteOrSmell = "loss-of-taste-or-smell"
        case shortnessOfBreath = "shortness-of-breath"
    }

    /// Unique symptoms, possibly none, in the order declared.
    public var symptoms: [Symptom]
    /// Body temperature, 30...45 °C, when measured.
    public var temperatureCelsius: Double?
    /// Where the person was when declaring, when given.
    public var location: AreaCode?

    public init(symptoms: [Symptom], temperatureCelsius: Double? = nil, location: AreaCode? = nil) {
        self.symptoms = symptoms
        self.temperatureCelsius = temperatureCelsius
        self.location = location
    }
}

/// `hc.exposure.v1`: contact with a case found by contact tracing; the event `time` is the last contact.
public struct Exposure: Sendable, Hashable {
    /// How close the contact was.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case closeContact = "close-contact"
        case secondaryContact = "secondary-contact"
    }

    public var kind: Kind
    /// The tracing team's reference to the case, when given.
    public var caseRef: String?

    public init(kind: Kind, caseRef: String? = nil) {
        self.kind = kind
        self.caseRef = caseRef
    }
}

/// `hc.risk-area.v1`: a risk level designation for the area code in the event `subject`; the event `time`
/// is the issue time. A later designation for the same code supersedes earlier ones while it is effective.
public struct RiskAreaDesignation: Sendable, Hashable {
    /// The designated level.
    public enum Level: String, Sendable, Hashable, Codable, CaseIterable {
        case low
        case medium
        case high
    }

    public var level: Level
    public var effectiveFrom: Instant
    /// End of the designation (exclusive), or `nil` for open-ended; always after `effectiveFrom`.
    public var effectiveUntil: Instant?

    public init(level: Level, effectiveFrom: Instant, effectiveUntil: Instant? = nil) {
        self.level = level
        self.effectiveFrom = effectiveFrom
        self.effectiveUntil = effectiveUntil
    }
}

/// `hc.review.v1`: an officer's decision overriding the computed code on `[time, validUntil)`.
public struct Review: Sendable, Hashable {
    public var status: CodeStatus
    /// End of the override (exclusive); always after the event `time`.
    public var validUntil: Instant
    public var reason: String
    /// The deciding officer, registered under the review office (the event's `source`).
    public var officer: String
    /// The second officer who released this override after the gateway held it over a quota, and when.
    /// Set by the gateway only: an ingested review that carries it is refused.
    public var approval: ReviewApproval?

    public init(
        status: CodeStatus,
        validUntil: Instant,
        reason: String,
        officer: String,
        approval: ReviewApproval? = nil
    ) {
        self.status = status
        self.validUntil = validUntil
        self.reason = reason
        self.officer = officer
        self.approval = approval
    }
}

/// A second officer's release of a held override (`data.approvedBy`, `data.approvedAt`).
public struct ReviewApproval: Sendable, Hashable {
    /// The approving officer, another officer of the same office.
    public var officer: String
    public var at: Instant

    public init(officer: String, at: Instant) {
        self.officer = officer
        self.at = at
    }
}

/// `hc.retraction.v1`: withdraws an earlier event of the same `source`; its `subject` is the retracted
/// event's subject (a person, or an area code for a retracted designation).
public struct Retraction: Sendable, Hashable {
    /// The `id` of the retracted event.
    public var retracts: String
    public var reason: String

    public init(retracts: String, reason: String) {
        self.retracts = retracts
        self.reason = reason
    }
}

/// The typed `data` of an event; the case determines the event type.
public enum EventPayload: Sendable, Hashable {
    case testResult(TestResult)
    case travel(Travel)
    case declaration(Declaration)
    case exposure(Exposure)
    case riskArea(RiskAreaDesignation)
    case review(Review)
    case retraction(Retraction)

    /// The event type this payload is published as.
    public var type: EventType {
        switch self {
        case .testResult: .testResult
        case .travel: .travel
        case .declaration: .declaration
        case .exposure: .exposure
        case .riskArea: .riskArea
        case .review: .review
        case .retraction: .retraction
        }
    }
}

/// A contract event: a CloudEvents 1.0 envelope with a typed payload.
public struct CloudEvent: Sendable, Hashable {
    /// 1...128 visible ASCII characters, unique per `source`.
    public var id: String
    /// The publisher, a URI reference such as `urn:hc:publisher:gd-health-bureau`.
    public var source: String
    /// A person identifier (raw before the gateway, pseudonym after it), or an area code for `hc.risk-area.v1`
    /// and for retractions of designations.
    public var subject: String
    /// When the fact occurred (sample, departure, declaration, last contact, issue or decision time).
    public var time: Instant
    /// When the backbone first accepted the event; set by the gateway. Absent in offline files, where it
    /// defaults to `time` (see ``effectiveRecordedTime``).
    public var recordedTime: Instant?
    public var dataContentType: String?
    public var dataSchema: String?
    public var traceParent: String?
    public var payload: EventPayload

    public init(
        id: String,
        source: String,
        subject: String,
        time: Instant,
        recordedTime: Instant? = nil,
        dataContentType: String? = nil,
        dataSchema: String? = nil,
        traceParent: String? = nil,
        payload: EventPayload
    ) {
        self.id = id
        self.source = source
        self.subject = subject
        self.time = time
        self.recordedTime = recordedTime
        self.dataContentType = dataContentType
        self.dataSchema = dataSchema
        self.traceParent = traceParent
        self.payload = payload
    }

    /// The event type, derived from the payload.
    public var type: EventType { payload.type }

    /// The idempotency key (`source`, `id`).
    public var reference: EventReference { EventReference(source: source, id: id) }

    /// `recordedTime`, or `time` when the event carries none (offline files).
    public var effectiveRecordedTime: Instant { recordedTime ?? time }

    /// Whether `subject` is a person (pseudonymised by the gateway, folded into ``PersonState``). False for
    /// designations and for retractions whose subject is an area code (they retract designations); person
    /// identifiers are never 6-digit area codes (schemas/README.md).
    public var isPersonEvent: Bool {
        switch payload {
        case .riskArea: false
        case .retraction: AreaCode(subject) == nil
        default: true
        }
    }
}

/// The (`source`, `id`) of an event: its idempotency key and how reasons cite it.
public struct EventReference: Sendable, Hashable, Codable, Comparable {
    public var source: String
    public var id: String

    public init(source: String, id: String) {
        self.source = source
        self.id = id
    }

    /// Orders by UTF-8 bytes of `source`, then of `id`.
    public static func < (lhs: EventReference, rhs: EventReference) -> Bool {
        if !lhs.source.hasSameBytes(as: rhs.source) { return lhs.source.bytesPrecede(rhs.source) }
        return lhs.id.bytesPrecede(rhs.id)
    }
}
