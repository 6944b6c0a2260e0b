/// One self-contained file that answers "why had this person this code at `at`, as known at `knownAt`" and
/// lets anyone check the answer without a server (`healthcode evidence verify`): the person's archived events,
/// each marked as counted or not and why, the designations, the rule set's file byte for byte, the result, and
/// the SHA-256 of each. Verification re-evaluates the events with the rule set and compares everything.
///
/// The file is JSON (`format` ``EvidenceBundle/format``), one event per line:
/// `{"format", "subject", "at", "knownAt", "context": {…}, "ruleSet": {"id", "version", "hash", "file"},
/// "events": [{"sha256", "counted", "why", "event"}], "areaEvents": [{"sha256", "counted", "event"}],
/// "result": <the line `healthcode evaluate` prints>, "resultSha256", "digest"}`.
/// An event's hash is that of its canonical bytes (``CloudEvent/jsonBytes()``, with its `recordedtime`); the
/// rule set's is that of its file (its content hash); `digest` is the SHA-256 of the rule set's hash, every
/// event's and area event's hash and the result's, one per line, in the file's order: one value that names
/// the whole bundle in a case file.
public struct EvidenceBundle: Sendable {
    /// The value of the file's `format` member.
    public static let format = "healthcode-evidence/1"

    /// One person event and whether it counted at (`at`, `knownAt`).
    public struct Entry: Sendable {
        public var event: CloudEvent
        /// Whether it is part of what was known at `knownAt` about the time up to `at`.
        public var counted: Bool
        /// Why, in words: the rules it made fire, or why it did not count.
        public var why: String
        /// SHA-256 (`sha256:<hex>`) of the event's canonical bytes.
        public var sha256: String
    }

    /// One designation (or its retraction) and whether it counted.
    public struct AreaEntry: Sendable {
        public var event: CloudEvent
        public var counted: Bool
        public var sha256: String
    }

    public var subject: String
    public var at: Instant
    public var knownAt: Instant
    /// Who made the bundle and why, as recorded in the audit (free text pairs, written as given).
    public var context: [(name: String, value: String)]
    /// The rule set's file, byte for byte as activated.
    public var ruleSetFile: [UInt8]
    public var ruleSet: RuleSet
    public var events: [Entry]
    public var areaEvents: [AreaEntry]
    /// The decision the rule set makes on the events at (`at`, `knownAt`).
    public var decision: CodeDecision

    /// Evaluates `events` (the person's archive, in archive order) and `areaEvents` (the designations, in
    /// archive order) with the rule set in `ruleSetFile` at `at` as known at `knownAt`, and marks each event.
    /// - Throws: ``RuleSetError`` when the file is not a rule set.
    public init(
        subject: String,
        at: Instant,
        knownAt: Instant,
        context: [(name: String, value: String)] = [],
        ruleSetFile: [UInt8],
        events: [CloudEvent],
        areaEvents: [CloudEvent]
    ) throws(RuleSetError) {
        let ruleSet = try RuleSet.decode(ruleSetFile)
        var state = PersonState()
        for event in events { state.apply(event) }
        var areas = RiskAreaMap()
        for event in areaEvents { areas.apply(event) }
        let decision = Policy(ruleSet: ruleSet).evaluate(state, areas: areas, at: at, knownAt: knownAt)
        self.subject = subject
        self.at = at
        self.knownAt = knownAt
        self.context = context
        self.ruleSetFile = ruleSetFile
        self.ruleSet = ruleSet
        self.decision = decision
        self.events = Self.entries(events, decision: decision, at: at, knownAt: knownAt)
        self.areaEvents = areaEvents.map { event in
            AreaEntry(
                event: event,
                counted: Self.notCounted(event, at: at, knownAt: knownAt) == nil,
                sha256: sha256Name(of: event.jsonBytes())
            )
        }
    }

    /// Each event marked: counted or not, and why.
    private static func entries(
        _ events: [CloudEvent],
        decision: CodeDecision,
        at: Instant,
        knownAt: Instant
    )
        -> [Entry]
    {
        var firing: [EventReference: [String]] = [:]
        for reason in decision.reasons {
            for reference in reason.events { firing[reference, default: []].append(reason.rule) }
        }
        var retractedBy: [EventReference: EventReference] = [:]
        for event in events where notCounted(event, at: at, knownAt: knownAt) == nil {
            if case .retraction(let retraction) = event.payload {
                retractedBy[EventReference(source: event.source, id: retraction.retracts)] = event.reference
            }
        }
        return events.map { event in
            let why: String
            if let reason = notCounted(event, at: at, knownAt: knownAt) {
                why = reason
            } else if let rules = firing[event.reference] {
                why = "counted: rules " + rules.joined(separator: ", ") + " fire on it"
            } else if let retraction = retractedBy[event.reference] {
                why = "counted, but retracted by \(retraction.source) \(retraction.id)"
            } else {
                why = "counted: no rule fires on it at \(at.rfc3339) (over, cleared, superseded or never a rule's)"
            }
            return Entry(
                event: event,
                counted: notCounted(event, at: at, knownAt: knownAt) == nil,
                why: why,
                sha256: sha256Name(of: event.jsonBytes())
            )
        }
    }

    /// Why `event` does not count at (`at`, `knownAt`); `nil` if it counts.
    private static func notCounted(_ event: CloudEvent, at: Instant, knownAt: Instant) -> String? {
        if event.effectiveRecordedTime > knownAt {
            return "not counted: recorded at \(event.effectiveRecordedTime.rfc3339), after knownAt"
        }
        if event.time > at { return "not counted at at: it happens later, at \(event.time.rfc3339)" }
        return nil
    }

    /// The SHA-256 of the result line.
    public var resultSha256: String { sha256Name(of: decision.evaluationLine(subject: subject)) }

    /// The hash that names the whole bundle (see the type's documentation).
    public var digest: String {
        var lines = [ruleSet.contentHash]
        lines += events.map(\.sha256)
        lines += areaEvents.map(\.sha256)
        lines.append(resultSha256)
        return sha256Name(of: Array(lines.joined(separator: "\n").utf8))
    }

    /// The bundle's file.
    public func jsonBytes() -> [UInt8] {
        var out = JSONWriter(capacity: 4096 + ruleSetFile.count + events.count * 600)
        out.raw("{\n")
        out.key("format")
        out.string(Self.format)
        out.raw(",\n")
        out.key("subject")
        out.string(subject)
        out.raw(",\n")
        out.key("at")
        out.instant(at)
        out.raw(",\n")
        out.key("knownAt")
        out.instant(knownAt)
        out.raw(",\n")
        out.key("context")
        out.raw("{")
        for (index, item) in context.enumerated() {
            if index > 0 { out.raw(",") }
            out.string(item.name)
            out.raw(":")
            out.string(item.value)
        }
        out.raw("},\n")
        out.key("ruleSet")
        out.raw("{")
        out.key("id")
        out.string(ruleSet.id)
        out.raw(",")
        out.key("version")
        out.string(ruleSet.version)
        out.raw(",")
        out.key("hash")
        out.string(ruleSet.contentHash)
        out.raw(",")
        out.key("file")
        out.string(String(decoding: ruleSetFile, as: UTF8.self))
        out.raw("},\n")
        out.key("events")
        Self.write(events.map { ($0.sha256, $0.counted, $0.why, $0.event) }, to: &out)
        out.key("areaEvents")
        Self.write(areaEvents.map { ($0.sha256, $0.counted, nil, $0.event) }, to: &out)
        out.key("result")
        out.bytes += decision.evaluationLine(subject: subject)
        out.raw(",\n")
        out.key("resultSha256")
        out.string(resultSha256)
        out.raw(",\n")
        out.key("digest")
        out.string(digest)
        out.raw("\n}\n")
        return out.bytes
    }
}

extension EvidenceBundle {
    /// An array of marked events, one per line.
    fileprivate static func write(
        _ entries: [(sha256: String, counted: Bool, why: String?, event: CloudEvent)],
        to out: inout JSONWriter
    ) {
        out.raw("[")
        for (index, entry) in entries.enumerated() {
            out.raw(index == 0 ? "\n" : ",\n")
            out.raw("{")
            out.key("sha256")
            out.string(entry.sha256)
            out.raw(",")
            out.key("counted")
            out.bool(entry.counted)
            if let why = entry.why {
                out.raw(",")
                out.key("why")
                out.string(why)
            }
            out.raw(",")
            out.key("event")
            out.bytes += entry.event.jsonBytes()
            out.raw("}")
        }
        out.raw("\n],\n")
    }
}

/// What checking an evidence file found: the bundle re-made from its own events and rule set, and every way in
/// which the file differs from it. Verified when nothing differs.
public struct EvidenceVerification: Sendable {
    /// The bundle re-evaluated from the file's events and rule set file; `nil` when the file could not be read
    /// that far.
    public var remade: EvidenceBundle?
    /// What differs or is wrong, each naming the member (never an event's contents).
    public var problems: [String]

    public var isVerified: Bool { problems.isEmpty && remade != nil }

    /// Reads an evidence file and checks it: its format, that the rule set file hashes to the named hash, each
    /// event to its hash, that re-evaluating gives the recorded result, marks and digest. Bounded by the file's
    /// size (a document's JSON limits apply).
    public static func verify(_ bytes: [UInt8]) -> EvidenceVerification {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            return EvidenceVerification(
                remade: nil,
                problems: ["not JSON at byte \(error.offset): \(error.reason)"]
            )
        }
        var problems: [String] = []
        guard case .object(let members) = value else {
            return EvidenceVerification(remade: nil, problems: ["the file must be a JSON object"])
        }
        func member(_ name: String) -> JSONValue? { members.first { $0.key == name }?.value }
        func string(_ name: String, in value: JSONValue?) -> String? {
            guard case .object(let members) = value,
                case .string(let text)? = members.first(where: { $0.key == name })?.value
            else { return nil }
            return text
        }
        func text(_ name: String) -> String? {
            if case .string(let text)? = member(name) { return text }
            return nil
        }
        guard text("format") == EvidenceBundle.format else {
            return EvidenceVerification(remade: nil, problems: ["format must be \(EvidenceBundle.format)"])
        }
        guard let subject = text("subject"), let at = text("at").flatMap(Instant.init(rfc3339:)),
            let knownAt = text("knownAt").flatMap(Instant.init(rfc3339:))
        else {
            return EvidenceVerification(remade: nil, problems: ["subject, at and knownAt must be present"])
        }
        guard let file = string("file", in: member("ruleSet")) else {
            return EvidenceVerification(remade: nil, problems: ["ruleSet.file must hold the rule set's file"])
        }
        var events: [CloudEvent] = []
        var areaEvents: [CloudEvent] = []
        var recorded: [(member: String, index: Int, entry: [JSONMember])] = []
        for (name, isPerson) in [("events", true), ("areaEvents", false)] {
            guard case .array(let items)? = member(name) else {
                return EvidenceVerification(remade: nil, problems: ["\(name) must be an array"])
            }
            for (index, item) in items.enumerated() {
                guard case .object(let entry) = item, let event = entry.first(where: { $0.key == "event" })?.value
                else {
                    return EvidenceVerification(remade: nil, problems: ["\(name)[\(index)] has no event"])
                }
                do {
                    let decoded = try EventDecoder.decode(event.jsonBytes())
                    if isPerson { events.append(decoded) } else { areaEvents.append(decoded) }
                    recorded.append((name, index, entry))
                } catch {
                    return EvidenceVerification(
                        remade: nil,
                        problems: ["\(name)[\(index)].event is not a valid event: \(error)"]
                    )
                }
            }
        }
        let remade: EvidenceBundle
        do {
            remade = try EvidenceBundle(
                subject: subject,
                at: at,
                knownAt: knownAt,
                ruleSetFile: Array(file.utf8),
                events: events,
                areaEvents: areaEvents
            )
        } catch {
            return EvidenceVerification(remade: nil, problems: ["ruleSet.file is not a rule set: \(error)"])
        }
        if string("hash", in: member("ruleSet")) != remade.ruleSet.contentHash {
            problems.append("ruleSet.hash is not the SHA-256 of ruleSet.file (\(remade.ruleSet.contentHash))")
        }
        if string("id", in: member("ruleSet")) != remade.ruleSet.id
            || string("version", in: member("ruleSet")) != remade.ruleSet.version
        {
            problems.append("ruleSet.id and version are not those of ruleSet.file")
        }
        for (name, index, entry) in recorded {
            func field(_ key: String) -> JSONValue? { entry.first { $0.key == key }?.value }
            let expected: (sha256: String, counted: Bool, why: String?) =
                name == "events"
                ? (remade.events[index].sha256, remade.events[index].counted, remade.events[index].why)
                : (remade.areaEvents[index].sha256, remade.areaEvents[index].counted, nil)
            if field("sha256") != .string(expected.sha256) {
                problems.append("\(name)[\(index)].sha256 is not the SHA-256 of its event")
            }
            if field("counted") != .bool(expected.counted) {
                problems.append("\(name)[\(index)].counted should be \(expected.counted)")
            }
            if let why = expected.why, field("why") != .string(why) {
                problems.append("\(name)[\(index)].why should be: \(why)")
            }
        }
        let result = remade.decision.evaluationLine(subject: subject)
        if let stored = member("result"), (try? JSONParser.parse(result)) != stored {
            problems.append(
                "result differs from the re-evaluation: \(String(decoding: result, as: UTF8.self))"
            )
        } else if member("result") == nil {
            problems.append("result must be present")
        }
        if text("resultSha256") != remade.resultSha256 {
            problems.append("resultSha256 is not the SHA-256 of the re-evaluated result")
        }
        if text("digest") != remade.digest {
            problems.append("digest is not the SHA-256 of the bundle's hashes (\(remade.digest))")
        }
        return EvidenceVerification(remade: remade, problems: problems)
    }
}

extension JSONValue {
    /// The value as JSON text (members in order; numbers in Swift's shortest round-tripping form).
    func jsonBytes() -> [UInt8] {
        var out = JSONWriter()
        write(to: &out)
        return out.bytes
    }

    private func write(to out: inout JSONWriter) {
        switch self {
        case .null: out.raw("null")
        case .bool(let value): out.bool(value)
        case .number(let value): out.number(value)
        case .string(let value): out.string(value)
        case .array(let items): out.array(items) { out, item in item.write(to: &out) }
        case .object(let members):
            out.raw("{")
            for (index, member) in members.enumerated() {
                if index > 0 { out.raw(",") }
                out.string(member.key)
                out.raw(":")
                member.value.write(to: &out)
            }
            out.raw("}")
        }
    }
}
