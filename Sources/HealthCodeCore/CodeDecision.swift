/// The colour of a health code. Ordered by severity: green < yellow < red.
public enum CodeStatus: String, Sendable, Hashable, Codable, Comparable, CaseIterable {
    case green
    case yellow
    case red

    private var severity: Int {
        switch self {
        case .green: 0
        case .yellow: 1
        case .red: 2
        }
    }

    public static func < (lhs: CodeStatus, rhs: CodeStatus) -> Bool { lhs.severity < rhs.severity }
}

/// One firing rule in a decision: which rule, the colour it asks for, until when, and the events behind it.
public struct CodeReason: Sendable, Hashable, Codable {
    /// The rule's name in the rule set, e.g. `close-contact`.
    public var rule: String
    public var colour: CodeStatus
    /// When the rule stops firing on the events that count at `at` (exclusive), or `nil` if it has no end.
    /// Events known but timed after `at` are not anticipated here; the decision's `validUntil` accounts for them.
    public var until: Instant?
    /// The events that made the rule fire, oldest first.
    public var events: [EventReference]

    public init(rule: String, colour: CodeStatus, until: Instant?, events: [EventReference]) {
        self.rule = rule
        self.colour = colour
        self.until = until
        self.events = events
    }
}

/// Which rule set decided: what a decision cites of it (docs/POLICY.md §4). Stored once per rule set
/// (PostgreSQL's `rule_set`), and referenced from every stored code and decision by a small number.
public struct RuleSetIdentity: Sendable, Hashable {
    public var id: String
    public var version: String
    /// `sha256:<hex>` of the rule set file's bytes.
    public var hash: String

    public init(id: String, version: String, hash: String) {
        self.id = id
        self.version = version
        self.hash = hash
    }
}

/// The outcome of evaluating one person: explainable (reasons cite events) and reproducible (cites the rule
/// set by id, version and content hash).
public struct CodeDecision: Sendable, Hashable {
    public var status: CodeStatus
    /// The earliest later instant at which the status, evaluated then as known at the same `knownAt`, differs
    /// (docs/POLICY.md §3.5), or `nil` if never.
    public var validUntil: Instant?
    /// Every firing rule, the override first, then in rule-set order.
    public var reasons: [CodeReason]
    public var ruleSetID: String
    public var ruleSetVersion: String
    /// `sha256:<hex>` of the rule set file's bytes.
    public var ruleSetHash: String

    public init(
        status: CodeStatus,
        validUntil: Instant?,
        reasons: [CodeReason],
        ruleSetID: String,
        ruleSetVersion: String,
        ruleSetHash: String
    ) {
        self.status = status
        self.validUntil = validUntil
        self.reasons = reasons
        self.ruleSetID = ruleSetID
        self.ruleSetVersion = ruleSetVersion
        self.ruleSetHash = ruleSetHash
    }

    /// The rule set that decided.
    public var ruleSet: RuleSetIdentity {
        RuleSetIdentity(id: ruleSetID, version: ruleSetVersion, hash: ruleSetHash)
    }
}

extension CodeDecision {
    /// The line `healthcode evaluate` prints for `subject` (docs/POLICY.md §4), without the trailing newline:
    /// `{"subject":…,"status":…,"validUntil":…|null,"reasons":[{"rule","colour","until","events":[{"source","id"}]}]}`
    /// with instants in RFC 3339 UTC whole seconds (sub-second parts truncated).
    public func evaluationLine(subject: String) -> [UInt8] {
        var out = JSONWriter(capacity: 128 + reasons.count * 160)
        out.raw("{")
        out.key("subject")
        out.string(subject)
        out.raw(",")
        out.key("status")
        out.string(status.rawValue)
        out.raw(",")
        out.key("validUntil")
        out.instantSeconds(validUntil)
        out.raw(",")
        out.key("reasons")
        out.array(reasons) { out, reason in
            out.raw("{")
            out.key("rule")
            out.string(reason.rule)
            out.raw(",")
            out.key("colour")
            out.string(reason.colour.rawValue)
            out.raw(",")
            out.key("until")
            out.instantSeconds(reason.until)
            out.raw(",")
            out.key("events")
            out.array(reason.events) { out, event in out.reference(event) }
            out.raw("}")
        }
        out.raw("}")
        return out.bytes
    }
}

extension JSONWriter {
    fileprivate mutating func instantSeconds(_ instant: Instant?) {
        if let instant { string(instant.rfc3339Seconds) } else { raw("null") }
    }
}
