/// The JSON the projector stores for a person's state and code (PostgreSQL `json`), written and read by hand
/// over UTF-8 bytes: every applied batch writes one state and one decision per person and every code lookup
/// reads them back, where Foundation's `JSONEncoder`/`JSONDecoder` cost more than the database round trip.
///
/// The layouts are readable in SQL:
/// - state: the compact layout (``CompactState``, `{"v":2,…}`) since schema 14; before, `{"tests":[…],
///   "travels":[…],"declarations":[…],"exposures":[…],"reviews":[…],"retractions":[…]}` with each record
///   `{"stamp":{"source","id","time","recorded"}, …fields}` and instants as RFC 3339 text (still read);
/// - decision: `{"status","validUntil"?,"reasons":[{"rule","colour","until"?,"events":[{"source","id"}]}]}`,
///   absent instants omitted (`null` is read as absent too). The rule set that decided is not repeated in
///   every decision: the stored row references it (``RuleSetIdentity``) and the reader is given it. Decisions
///   stored before that (with `ruleSetID`, `ruleSetVersion`, `ruleSetHash` members) read the same.

/// Why stored JSON could not be read back; names the document and the field, never its values.
public struct StoredJSONError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `person-state` or `code-decision`.
    public var document: String
    /// Dotted path of the offending field, e.g. `tests[2].stamp.time`.
    public var field: String
    public var reason: String

    public var description: String { "stored \(document) is unreadable at '\(field)': \(reason)" }
}

extension PersonState {
    /// The stored JSON of this state, in the compact layout (`"v":2`, see ``CompactState``).
    public func storedJSON() -> [UInt8] {
        var out = JSONWriter(capacity: 96 + heldEventCount * 64)
        var publishers = CompactState.Publishers()
        // The records first, into a buffer of their own: the publishers they use are known only after.
        var records = JSONWriter(capacity: heldEventCount * 64)
        records.raw(",")
        records.key("tests")
        records.compactRecords(tests, &publishers) { out, record in
            out.string(record.test.rawValue)
            out.raw(",")
            out.string(record.result.rawValue)
        }
        records.raw(",")
        records.key("travels")
        records.compactRecords(travels, &publishers) { out, record in
            out.integer(Int(record.from.value))
            out.raw(",")
            out.integer(Int(record.to.value))
            out.raw(",")
            out.compactInstant(record.arrivedAt)
        }
        records.raw(",")
        records.key("declarations")
        records.compactRecords(declarations, &publishers) { out, record in
            out.array(record.symptoms) { out, symptom in out.string(symptom.rawValue) }
            out.raw(",")
            if let temperature = record.temperatureCelsius { out.number(temperature) } else { out.raw("null") }
            out.raw(",")
            if let location = record.location { out.integer(Int(location.value)) } else { out.raw("null") }
        }
        records.raw(",")
        records.key("exposures")
        records.compactRecords(exposures, &publishers) { out, record in out.string(record.kind.rawValue) }
        records.raw(",")
        records.key("reviews")
        records.compactRecords(reviews, &publishers) { out, record in
            out.string(record.status.rawValue)
            out.raw(",")
            out.compactInstant(record.validUntil)
        }
        records.raw(",")
        records.key("retractions")
        records.compactRecords(retractions, &publishers) { out, record in out.string(record.retracts) }
        records.raw("}")

        out.raw("{")
        out.key("v")
        out.integer(2)
        out.raw(",")
        out.key("publishers")
        out.array(publishers.names) { out, name in out.string(name) }
        if prunedCount > 0 {
            out.raw(",")
            out.key("pruned")
            out.integer(prunedCount)
        }
        if let prunedBefore {
            out.raw(",")
            out.key("prunedBefore")
            out.compactInstant(prunedBefore)
        }
        if let prunedFor {
            out.raw(",")
            out.key("prunedFor")
            out.string(prunedFor)
        }
        out.bytes.append(contentsOf: records.bytes)
        return out.bytes
    }

    /// Reads a state back from its stored JSON, in either layout.
    public init(storedJSON bytes: some Collection<UInt8>) throws(StoredJSONError) {
        let document = try StoredDocument.parse(bytes, name: "person-state")
        if try document.member("v") != nil {
            try self.init(compact: document)
            return
        }
        self.init()
        tests = try document.records("tests") { record throws(StoredJSONError) in
            TestRecord(
                stamp: try record.stamp(),
                test: try record.enumeration("test"),
                result: try record.enumeration("result")
            )
        }
        travels = try document.records("travels") { record throws(StoredJSONError) in
            TravelRecord(
                stamp: try record.stamp(),
                from: try record.area("from"),
                to: try record.area("to"),
                arrivedAt: try record.instant("arrivedAt")
            )
        }
        declarations = try document.records("declarations") { record throws(StoredJSONError) in
            DeclarationRecord(
                stamp: try record.stamp(),
                symptoms: try record.array("symptoms").map { symptom throws(StoredJSONError) in
                    try symptom.enumeration()
                },
                temperatureCelsius: try record.optionalNumber("temperatureCelsius"),
                location: try record.optional("location") { value throws(StoredJSONError) in try value.area() }
            )
        }
        exposures = try document.records("exposures") { record throws(StoredJSONError) in
            ExposureRecord(stamp: try record.stamp(), kind: try record.enumeration("kind"))
        }
        reviews = try document.records("reviews") { record throws(StoredJSONError) in
            ReviewRecord(
                stamp: try record.stamp(),
                status: try record.enumeration("status"),
                validUntil: try record.instant("validUntil")
            )
        }
        retractions = try document.records("retractions") { record throws(StoredJSONError) in
            RetractionRecord(stamp: try record.stamp(), retracts: try record.string("retracts"))
        }
        prunedCount = try document.member("pruned")?.integer() ?? 0
        prunedBefore = try document.member("prunedBefore")?.instant()
        prunedFor = try document.member("prunedFor")?.string()
        try rebuildAppliedKeys()
    }

    /// The state in the first, readable layout (records as objects with their stamp, publishers by URN,
    /// instants as RFC 3339 text), with `pruned`, `prunedBefore` and `prunedFor` when the state was pruned:
    /// what a subject-access export shows. ``init(storedJSON:)`` reads it back equal.
    public func readableJSON() -> [UInt8] {
        var out = JSONWriter(capacity: 128 + heldEventCount * 160)
        func records<Record: StampedRecord>(
            _ name: StaticString,
            _ list: [Record],
            first: Bool = false,
            _ fields: (inout JSONWriter, Record) -> Void
        ) {
            if !first { out.raw(",") }
            out.key(name)
            out.raw("[")
            for (index, record) in list.enumerated() {
                if index > 0 { out.raw(",") }
                out.raw("{")
                out.key("stamp")
                out.raw("{")
                out.key("source")
                out.string(record.stamp.source)
                out.raw(",")
                out.key("id")
                out.string(record.stamp.id)
                out.raw(",")
                out.key("time")
                out.string(record.stamp.time.rfc3339)
                out.raw(",")
                out.key("recorded")
                out.string(record.stamp.recorded.rfc3339)
                out.raw("}")
                fields(&out, record)
                out.raw("}")
            }
            out.raw("]")
        }
        out.raw("{")
        records("tests", tests, first: true) { out, record in
            out.raw(",")
            out.key("test")
            out.string(record.test.rawValue)
            out.raw(",")
            out.key("result")
            out.string(record.result.rawValue)
        }
        records("travels", travels) { out, record in
            out.raw(",")
            out.key("from")
            out.string(record.from.description)
            out.raw(",")
            out.key("to")
            out.string(record.to.description)
            out.raw(",")
            out.key("arrivedAt")
            out.string(record.arrivedAt.rfc3339)
        }
        records("declarations", declarations) { out, record in
            out.raw(",")
            out.key("symptoms")
            out.array(record.symptoms) { out, symptom in out.string(symptom.rawValue) }
            if let temperature = record.temperatureCelsius {
                out.raw(",")
                out.key("temperatureCelsius")
                out.number(temperature)
            }
            if let location = record.location {
                out.raw(",")
                out.key("location")
                out.string(location.description)
            }
        }
        records("exposures", exposures) { out, record in
            out.raw(",")
            out.key("kind")
            out.string(record.kind.rawValue)
        }
        records("reviews", reviews) { out, record in
            out.raw(",")
            out.key("status")
            out.string(record.status.rawValue)
            out.raw(",")
            out.key("validUntil")
            out.string(record.validUntil.rfc3339)
        }
        records("retractions", retractions) { out, record in
            out.raw(",")
            out.key("retracts")
            out.string(record.retracts)
        }
        if prunedCount > 0 {
            out.raw(",")
            out.key("pruned")
            out.integer(prunedCount)
        }
        if let prunedBefore {
            out.raw(",")
            out.key("prunedBefore")
            out.string(prunedBefore.rfc3339)
        }
        if let prunedFor {
            out.raw(",")
            out.key("prunedFor")
            out.string(prunedFor)
        }
        out.raw("}")
        return out.bytes
    }
}

extension CodeDecision {
    /// The stored JSON of this decision, without its rule set (see ``RuleSetIdentity``).
    public func storedJSON() -> [UInt8] {
        var out = JSONWriter(capacity: 160 + reasons.count * 160)
        out.raw("{")
        out.key("status")
        out.string(status.rawValue)
        if let validUntil {
            out.raw(",")
            out.key("validUntil")
            out.string(validUntil.rfc3339)
        }
        out.raw(",")
        out.key("reasons")
        out.array(reasons) { out, reason in
            out.raw("{")
            out.key("rule")
            out.string(reason.rule)
            out.raw(",")
            out.key("colour")
            out.string(reason.colour.rawValue)
            if let until = reason.until {
                out.raw(",")
                out.key("until")
                out.string(until.rfc3339)
            }
            out.raw(",")
            out.key("events")
            out.array(reason.events) { out, event in out.reference(event) }
            out.raw("}")
        }
        out.raw("}")
        return out.bytes
    }

    /// Reads a decision back from its stored JSON and the rule set its stored row references.
    public init(storedJSON bytes: some Collection<UInt8>, ruleSet: RuleSetIdentity) throws(StoredJSONError) {
        let document = try StoredDocument.parse(bytes, name: "code-decision")
        self.init(
            status: try document.enumeration("status"),
            validUntil: try document.optional("validUntil") { value throws(StoredJSONError) in try value.instant() },
            reasons: try document.records("reasons") { reason throws(StoredJSONError) in
                CodeReason(
                    rule: try reason.string("rule"),
                    colour: try reason.enumeration("colour"),
                    until: try reason.optional("until") { value throws(StoredJSONError) in try value.instant() },
                    events: try reason.records("events") { event throws(StoredJSONError) in
                        EventReference(source: try event.string("source"), id: try event.string("id"))
                    }
                )
            },
            ruleSetID: ruleSet.id,
            ruleSetVersion: ruleSet.version,
            ruleSetHash: ruleSet.hash
        )
    }
}

extension JSONWriter {
    /// Writes `{"source":…,"id":…}`.
    mutating func reference(_ reference: EventReference) {
        raw("{")
        key("source")
        string(reference.source)
        raw(",")
        key("id")
        string(reference.id)
        raw("}")
    }
}

extension ImpactReport {
    /// A report from ``jsonBytes()`` (as a held change keeps it); throws ``StoredJSONError`` naming the field
    /// that is wrong.
    public init(storedJSON bytes: some Collection<UInt8>) throws(StoredJSONError) {
        let document = try StoredDocument.parse(bytes, name: "impact-report")
        var unchanged: [CodeStatus: Int] = [:]
        if let counts = try document.member("unchanged") {
            for status in CodeStatus.allCases {
                // The JSON writes every colour; the report keeps only those with people.
                if let count = try counts.member(status.rawValue)?.integer(), count > 0 { unchanged[status] = count }
            }
        }
        var samplesPerLine = 0
        var lines: [Line] = []
        for line in try document.array("transitions") {
            let samples = try line.array("samples").map { (sample) throws(StoredJSONError) in try sample.string() }
            samplesPerLine = max(samplesPerLine, samples.count)
            lines.append(
                Line(
                    area: try line.optional("area") { (area) throws(StoredJSONError) in try area.area() },
                    transition: Transition(from: try line.enumeration("from"), to: try line.enumeration("to")),
                    count: try line.required("count").integer(),
                    samples: samples
                )
            )
        }
        self.init(
            people: try document.required("people").integer(),
            unchanged: unchanged,
            lines: lines,
            samplesPerLine: max(samplesPerLine, 5)
        )
    }
}

/// A value inside a stored document, with its path for errors.
private struct StoredDocument {
    let value: JSONValue
    let path: String
    let name: String

    static func parse(_ bytes: some Collection<UInt8>, name: String) throws(StoredJSONError) -> StoredDocument {
        do {
            return StoredDocument(value: try JSONParser.parse(bytes), path: "", name: name)
        } catch {
            throw StoredJSONError(
                document: name,
                field: "",
                reason: "not JSON (\(error.reason) at byte \(error.offset))"
            )
        }
    }

    func fail(_ reason: String, at field: String? = nil) -> StoredJSONError {
        StoredJSONError(document: name, field: field.map(child) ?? path, reason: reason)
    }

    private func child(_ field: String) -> String { path.isEmpty ? field : path + "." + field }

    /// The member `field`, or `nil` when absent or `null`.
    func member(_ field: String) throws(StoredJSONError) -> StoredDocument? {
        guard case .object(let members) = value else { throw fail("must be an object, not \(value.typeName)") }
        guard let member = members.first(where: { $0.key == field }), member.value != .null else { return nil }
        return StoredDocument(value: member.value, path: child(field), name: name)
    }

    func required(_ field: String) throws(StoredJSONError) -> StoredDocument {
        guard let member = try member(field) else { throw fail("is missing", at: field) }
        return member
    }

    func optional<T>(
        _ field: String,
        _ read: (StoredDocument) throws(StoredJSONError) -> T
    ) throws(StoredJSONError) -> T? {
        guard let member = try member(field) else { return nil }
        return try read(member)
    }

    func array(_ field: String) throws(StoredJSONError) -> [StoredDocument] {
        let member = try required(field)
        guard case .array(let elements) = member.value else {
            throw member.fail("must be an array, not \(member.value.typeName)")
        }
        return elements.enumerated().map { index, element in
            StoredDocument(value: element, path: member.path + "[\(index)]", name: name)
        }
    }

    func records<T>(
        _ field: String,
        _ read: (StoredDocument) throws(StoredJSONError) -> T
    ) throws(StoredJSONError) -> [T] {
        var result: [T] = []
        for element in try array(field) { result.append(try read(element)) }
        return result
    }

    func string() throws(StoredJSONError) -> String {
        guard case .string(let text) = value else { throw fail("must be a string, not \(value.typeName)") }
        return text
    }

    func string(_ field: String) throws(StoredJSONError) -> String { try required(field).string() }

    func enumeration<T: RawRepresentable<String>>() throws(StoredJSONError) -> T {
        guard let value = T(rawValue: try string()) else { throw fail("is not a known \(T.self)") }
        return value
    }

    func enumeration<T: RawRepresentable<String>>(_ field: String) throws(StoredJSONError) -> T {
        try required(field).enumeration()
    }

    func instant() throws(StoredJSONError) -> Instant {
        guard let instant = Instant(rfc3339: try string()) else { throw fail("must be an RFC 3339 instant") }
        return instant
    }

    func instant(_ field: String) throws(StoredJSONError) -> Instant { try required(field).instant() }

    func area() throws(StoredJSONError) -> AreaCode {
        guard let area = AreaCode(try string()) else { throw fail("must be a 6-digit area code") }
        return area
    }

    func area(_ field: String) throws(StoredJSONError) -> AreaCode { try required(field).area() }

    func optionalNumber(_ field: String) throws(StoredJSONError) -> Double? {
        guard let member = try member(field) else { return nil }
        guard case .number(let number) = member.value else {
            throw member.fail("must be a number, not \(member.value.typeName)")
        }
        return number
    }

    func stamp() throws(StoredJSONError) -> EventStamp {
        let stamp = try required("stamp")
        return EventStamp(
            source: try stamp.string("source"),
            id: try stamp.string("id"),
            time: try stamp.instant("time"),
            recorded: try stamp.instant("recorded")
        )
    }
}

/// The compact layout of a stored state (`"v":2`): `{"v":2,"publishers":[…],"pruned"?:n,"prunedBefore"?:t,
/// "prunedFor"?:signature,
/// "tests":[…],"travels":[…],"declarations":[…],"exposures":[…],"reviews":[…],"retractions":[…]}`, each record
/// an array `[publisher, id, time, recorded, …fields]`: the publisher as its position in `publishers`, instants
/// as integer microseconds since the epoch (as an RFC 3339 string beyond ±2^53, where a JSON number stops being
/// exact), area codes as integers. Fields by kind: tests `test, result`; travels `from, to, arrivedAt`;
/// declarations `[symptoms], temperature|null, location|null`; exposures `kind`; reviews `status, validUntil`;
/// retractions `retracts`. A little over half the bytes of the first layout (ids and instants are most of
/// what remains), which stays readable.
enum CompactState {
    /// The publishers of a state's records, numbered in order of first use.
    struct Publishers {
        private(set) var names: [String] = []
        private var numbers: [String: Int] = [:]

        mutating func number(of name: String) -> Int {
            if let number = numbers[name] { return number }
            numbers[name] = names.count
            names.append(name)
            return names.count - 1
        }
    }

    /// The largest magnitude a JSON number holds exactly as a double.
    static let exactIntegers: Int64 = 1 << 53
}

extension JSONWriter {
    /// Writes `[[publisher,id,time,recorded,<fields>],…]`; `fields` writes the members after the stamp.
    fileprivate mutating func compactRecords<Record: StampedRecord>(
        _ records: [Record],
        _ publishers: inout CompactState.Publishers,
        fields: (inout JSONWriter, Record) -> Void
    ) {
        raw("[")
        for (index, record) in records.enumerated() {
            if index > 0 { raw(",") }
            raw("[")
            integer(publishers.number(of: record.stamp.source))
            raw(",")
            string(record.stamp.id)
            raw(",")
            compactInstant(record.stamp.time)
            raw(",")
            compactInstant(record.stamp.recorded)
            raw(",")
            fields(&self, record)
            raw("]")
        }
        raw("]")
    }

    /// An instant as integer microseconds, or as RFC 3339 text where a JSON number would not be exact.
    fileprivate mutating func compactInstant(_ instant: Instant) {
        let micros = instant.microsecondsSinceEpoch
        if micros > -CompactState.exactIntegers && micros < CompactState.exactIntegers {
            integer(micros)
        } else {
            string(instant.rfc3339)
        }
    }
}

extension PersonState {
    /// Reads the compact layout (``CompactState``).
    fileprivate init(compact document: StoredDocument) throws(StoredJSONError) {
        self.init()
        guard try document.required("v").integer() == 2 else {
            throw document.fail("is not a known layout", at: "v")
        }
        let publishers = try document.array("publishers").map { name throws(StoredJSONError) in try name.string() }
        prunedCount = try document.member("pruned")?.integer() ?? 0
        prunedBefore = try document.member("prunedBefore")?.compactInstant()
        prunedFor = try document.member("prunedFor")?.string()
        func stamp(_ fields: [StoredDocument]) throws(StoredJSONError) -> EventStamp {
            let publisher = try fields[0].integer()
            guard publishers.indices.contains(publisher) else { throw fields[0].fail("names no publisher") }
            return EventStamp(
                source: publishers[publisher],
                id: try fields[1].string(),
                time: try fields[2].compactInstant(),
                recorded: try fields[3].compactInstant()
            )
        }
        tests = try document.compactRecords("tests", fields: 2) { record throws(StoredJSONError) in
            TestRecord(
                stamp: try stamp(record),
                test: try record[4].enumeration(),
                result: try record[5].enumeration()
            )
        }
        travels = try document.compactRecords("travels", fields: 3) { record throws(StoredJSONError) in
            TravelRecord(
                stamp: try stamp(record),
                from: try record[4].compactArea(),
                to: try record[5].compactArea(),
                arrivedAt: try record[6].compactInstant()
            )
        }
        declarations = try document.compactRecords("declarations", fields: 3) { record throws(StoredJSONError) in
            DeclarationRecord(
                stamp: try stamp(record),
                symptoms: try record[4].elements().map { symptom throws(StoredJSONError) in try symptom.enumeration() },
                temperatureCelsius: record[5].value == .null ? nil : try record[5].number(),
                location: record[6].value == .null ? nil : try record[6].compactArea()
            )
        }
        exposures = try document.compactRecords("exposures", fields: 1) { record throws(StoredJSONError) in
            ExposureRecord(stamp: try stamp(record), kind: try record[4].enumeration())
        }
        reviews = try document.compactRecords("reviews", fields: 2) { record throws(StoredJSONError) in
            ReviewRecord(
                stamp: try stamp(record),
                status: try record[4].enumeration(),
                validUntil: try record[5].compactInstant()
            )
        }
        retractions = try document.compactRecords("retractions", fields: 1) { record throws(StoredJSONError) in
            RetractionRecord(stamp: try stamp(record), retracts: try record[4].string())
        }
        try rebuildAppliedKeys()
    }
}

extension StoredDocument {
    /// The array members of `field`, each an array of four stamp members and `fields` more.
    fileprivate func compactRecords<T>(
        _ field: String,
        fields: Int,
        _ read: ([StoredDocument]) throws(StoredJSONError) -> T
    ) throws(StoredJSONError) -> [T] {
        var result: [T] = []
        for record in try array(field) {
            let members = try record.elements()
            guard members.count == 4 + fields else {
                throw record.fail("must have \(4 + fields) members, not \(members.count)")
            }
            result.append(try read(members))
        }
        return result
    }

    fileprivate func elements() throws(StoredJSONError) -> [StoredDocument] {
        guard case .array(let elements) = value else { throw fail("must be an array, not \(value.typeName)") }
        return elements.enumerated().map { index, element in
            StoredDocument(value: element, path: path + "[\(index)]", name: name)
        }
    }

    fileprivate func number() throws(StoredJSONError) -> Double {
        guard case .number(let number) = value else { throw fail("must be a number, not \(value.typeName)") }
        return number
    }

    fileprivate func integer() throws(StoredJSONError) -> Int {
        let number = try number()
        guard number.rounded() == number, abs(number) < Double(CompactState.exactIntegers) else {
            throw fail("must be an integer")
        }
        return Int(number)
    }

    fileprivate func compactInstant() throws(StoredJSONError) -> Instant {
        if case .string = value { return try instant() }
        return Instant(microsecondsSinceEpoch: Int64(try integer()))
    }

    fileprivate func compactArea() throws(StoredJSONError) -> AreaCode {
        let number = try integer()
        guard (100_000...999_999).contains(number), let area = AreaCode(String(number)) else {
            throw fail("must be a 6-digit area code")
        }
        return area
    }
}
