/// The JSON the projector stores for a person's state and code (PostgreSQL `json`), written and read by hand
/// over UTF-8 bytes: every applied batch writes one state and one decision per person and every code lookup
/// reads them back, where Foundation's `JSONEncoder`/`JSONDecoder` cost more than the database round trip.
///
/// The layout is readable in SQL (`state->'tests'`, instants as RFC 3339 text):
/// - state: `{"tests":[…],"travels":[…],"declarations":[…],"exposures":[…],"reviews":[…],"retractions":[…]}`,
///   each record `{"stamp":{"source","id","time","recorded"}, …fields}`;
/// - decision: `{"status","validUntil"?,"reasons":[{"rule","colour","until"?,"events":[{"source","id"}]}],
///   "ruleSetID","ruleSetVersion","ruleSetHash"}`, absent instants omitted (`null` is read as absent too).

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
    /// The stored JSON of this state.
    public func storedJSON() -> [UInt8] {
        var out = JSONWriter(capacity: 64 + eventCount * 160)
        out.raw("{")
        out.key("tests")
        out.records(tests) { out, record in
            out.key("test")
            out.string(record.test.rawValue)
            out.raw(",")
            out.key("result")
            out.string(record.result.rawValue)
        }
        out.raw(",")
        out.key("travels")
        out.records(travels) { out, record in
            out.key("from")
            out.string(record.from.description)
            out.raw(",")
            out.key("to")
            out.string(record.to.description)
            out.raw(",")
            out.key("arrivedAt")
            out.string(record.arrivedAt.rfc3339)
        }
        out.raw(",")
        out.key("declarations")
        out.records(declarations) { out, record in
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
        out.raw(",")
        out.key("exposures")
        out.records(exposures) { out, record in
            out.key("kind")
            out.string(record.kind.rawValue)
        }
        out.raw(",")
        out.key("reviews")
        out.records(reviews) { out, record in
            out.key("status")
            out.string(record.status.rawValue)
            out.raw(",")
            out.key("validUntil")
            out.string(record.validUntil.rfc3339)
        }
        out.raw(",")
        out.key("retractions")
        out.records(retractions) { out, record in
            out.key("retracts")
            out.string(record.retracts)
        }
        out.raw("}")
        return out.bytes
    }

    /// Reads a state back from its stored JSON.
    public init(storedJSON bytes: some Collection<UInt8>) throws(StoredJSONError) {
        let document = try StoredDocument.parse(bytes, name: "person-state")
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
        try rebuildAppliedKeys()
    }
}

extension CodeDecision {
    /// The stored JSON of this decision.
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
        out.raw(",")
        out.key("ruleSetID")
        out.string(ruleSetID)
        out.raw(",")
        out.key("ruleSetVersion")
        out.string(ruleSetVersion)
        out.raw(",")
        out.key("ruleSetHash")
        out.string(ruleSetHash)
        out.raw("}")
        return out.bytes
    }

    /// Reads a decision back from its stored JSON.
    public init(storedJSON bytes: some Collection<UInt8>) throws(StoredJSONError) {
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
            ruleSetID: try document.string("ruleSetID"),
            ruleSetVersion: try document.string("ruleSetVersion"),
            ruleSetHash: try document.string("ruleSetHash")
        )
    }
}

extension JSONWriter {
    /// Writes `[{"stamp":…,<fields>},…]`; `fields` writes the members after the stamp.
    fileprivate mutating func records<Record: StampedRecord>(
        _ records: [Record],
        fields: (inout JSONWriter, Record) -> Void
    ) {
        array(records) { out, record in
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
            out.raw("},")
            fields(&out, record)
            out.raw("}")
        }
    }

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
