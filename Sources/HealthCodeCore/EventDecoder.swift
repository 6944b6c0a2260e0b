/// Decodes contract events from structured-mode CloudEvents JSON, accepting exactly what the JSON Schemas in
/// schemas/ accept (a conformance test runs every example and many mutants through both).
public enum EventDecoder {
    /// Decodes one event from a JSON object.
    public static func decode(_ bytes: some Collection<UInt8>) throws(EventValidationError) -> CloudEvent {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, limits: .event)
        } catch {
            throw malformed(error)
        }
        return try decode(value)
    }

    /// Decodes a batch: a JSON array of events (`application/cloudevents-batch+json`) when the first
    /// non-whitespace byte is `[`, else NDJSON, one event per line (blank lines are skipped).
    ///
    /// Each event is decoded independently, so one bad event does not hide the others; `error` is set when the
    /// body as a whole is unusable (not a JSON array, no event at all, or more than `maximumEvents`). The work
    /// is linear in the body and bounded by `maximumEvents`: each event is parsed under ``JSONLimits/event``
    /// and decoded as soon as it is parsed, and the count is checked before each next event is parsed, so a
    /// body of a million tiny elements or lines stops after `maximumEvents`.
    public static func decodeBatch(_ body: some Collection<UInt8>, maximumEvents: Int = .max) -> EventBatch {
        if let batch = body.withContiguousStorageIfAvailable({ decodeBatch(buffer: $0, maximumEvents: maximumEvents) })
        {
            return batch
        }
        return Array(body).withUnsafeBufferPointer { decodeBatch(buffer: $0, maximumEvents: maximumEvents) }
    }

    private static func decodeBatch(buffer: UnsafeBufferPointer<UInt8>, maximumEvents: Int) -> EventBatch {
        var first = 0
        while first < buffer.count, isWhitespace(buffer[first]) { first += 1 }
        var items: [Result<CloudEvent, EventValidationError>] = []
        if first < buffer.count, buffer[first] == UInt8(ascii: "[") {
            do {
                try JSONParser.forEachElement(
                    of: buffer,
                    start: first,
                    maximumElements: maximumEvents,
                    limits: .event
                ) { element in
                    let index = items.count
                    items.append(
                        Result { () throws(EventValidationError) in try decode(element) }
                            .mapError { located($0, index: index, line: nil, value: element) }
                    )
                }
            } catch  where error.exceedsLimits && items.count == maximumEvents {
                return EventBatch(items: [], error: tooManyEvents(maximumEvents))
            } catch {
                var problem = malformed(error)
                if error.exceedsLimits { problem.eventIndex = items.count }
                return EventBatch(items: [], error: problem)
            }
        } else {
            var lineStart = 0
            var lineNumber = 0
            while lineStart < buffer.count {
                lineNumber += 1
                var lineEnd = lineStart
                while lineEnd < buffer.count, buffer[lineEnd] != 0x0A { lineEnd += 1 }
                var probe = lineStart
                while probe < lineEnd, isWhitespace(buffer[probe]) { probe += 1 }
                if probe < lineEnd {
                    guard items.count < maximumEvents else {
                        return EventBatch(items: [], error: tooManyEvents(maximumEvents))
                    }
                    let index = items.count
                    let result: Result<CloudEvent, EventValidationError>
                    do {
                        let value = try JSONParser.parse(buffer, range: lineStart..<lineEnd, limits: .event)
                        result = Result { () throws(EventValidationError) in try decode(value) }
                            .mapError { located($0, index: index, line: lineNumber, value: value) }
                    } catch {
                        result = .failure(located(malformed(error), index: index, line: lineNumber, value: nil))
                    }
                    items.append(result)
                }
                lineStart = lineEnd + 1
            }
        }
        if items.isEmpty {
            return EventBatch(
                items: [],
                error: EventValidationError(code: .emptyBatch, fieldPath: "", reason: "the batch holds no event")
            )
        }
        return EventBatch(items: items, error: nil)
    }

    private static func tooManyEvents(_ maximumEvents: Int) -> EventValidationError {
        EventValidationError(
            code: .batchTooLarge,
            fieldPath: "",
            reason: "the batch holds more than \(maximumEvents) events"
        )
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private static func malformed(_ error: JSONSyntaxError) -> EventValidationError {
        if error.exceedsLimits {
            return EventValidationError(
                code: .tooLarge,
                fieldPath: "",
                reason: "larger than the contract allows at byte \(error.offset): \(error.reason)"
            )
        }
        return EventValidationError(
            code: .malformedJSON,
            fieldPath: "",
            reason: "not valid JSON at byte \(error.offset): \(error.reason)"
        )
    }

    private static func located(
        _ error: EventValidationError,
        index: Int,
        line: Int?,
        value: JSONValue?
    )
        -> EventValidationError
    {
        var error = error
        error.eventIndex = index
        error.line = line
        if case .object(let members)? = value,
            let id = members.first(where: { $0.key == "id" }),
            case .string(let text) = id.value, Contract.isEventID(text)
        {
            error.eventID = text
        }
        return error
    }

    /// Decodes an already parsed JSON value.
    static func decode(_ value: JSONValue) throws(EventValidationError) -> CloudEvent {
        guard case .object(let members) = value else {
            throw EventValidationError(code: .wrongType, fieldPath: "", reason: "an event must be a JSON object")
        }
        let envelope = FieldReader(members: members, path: "")
        try envelope.rejectUnknown(Contract.envelopeFields)
        let specVersion = try envelope.requiredString("specversion")
        guard specVersion == "1.0" else {
            throw envelope.invalid("specversion", "must be \"1.0\"")
        }
        let id = try envelope.requiredString("id")
        guard Contract.isEventID(id) else {
            throw envelope.invalid("id", "must be 1 to 128 visible ASCII characters")
        }
        let source = try envelope.requiredString("source")
        guard Contract.isSource(source) else {
            throw envelope.invalid("source", "must be a URI reference of 1 to 256 URI characters")
        }
        let typeName = try envelope.requiredString("type")
        guard let type = FieldReader.enumCase(EventType.self, typeName) else {
            throw EventValidationError(
                code: .unsupportedType,
                fieldPath: "type",
                reason: "must be one of " + EventType.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        let subject = try envelope.requiredString("subject")
        switch type {
        case .riskArea:
            guard AreaCode(subject) != nil else { throw envelope.invalid("subject", Contract.areaCodeRule) }
        case .retraction:
            guard Contract.isEventID(subject) else {
                throw envelope.invalid("subject", "must be 1 to 128 visible ASCII characters")
            }
        default:
            guard Contract.isEventID(subject), AreaCode(subject) == nil else {
                throw envelope.invalid(
                    "subject",
                    "must be a person identifier: 1 to 128 visible ASCII characters, not a 6-digit area code"
                )
            }
        }
        let time = try envelope.requiredInstant("time")
        let recordedTime = try envelope.optionalInstant("recordedtime")
        let dataContentType = try envelope.optionalString("datacontenttype")
        if let dataContentType, dataContentType != "application/json" {
            throw envelope.invalid("datacontenttype", "must be \"application/json\" when present")
        }
        let dataSchema = try envelope.optionalString("dataschema")
        if let dataSchema, !Contract.isAbsoluteURI(dataSchema) {
            throw envelope.invalid("dataschema", "must be an absolute URI of at most 512 URI characters")
        }
        let traceParent = try envelope.optionalString("traceparent")
        if let traceParent, !Contract.isTraceParent(traceParent) {
            throw envelope.invalid("traceparent", "must be a W3C trace context version 00 traceparent")
        }
        guard let dataValue = envelope.value("data") else {
            throw envelope.missing("data")
        }
        guard case .object(let dataMembers) = dataValue else {
            throw envelope.wrongType("data", expected: "an object", actual: dataValue)
        }
        return CloudEvent(
            id: id,
            source: source,
            subject: subject,
            time: time,
            recordedTime: recordedTime,
            dataContentType: dataContentType,
            dataSchema: dataSchema,
            traceParent: traceParent,
            payload: try payload(type, FieldReader(members: dataMembers, path: "data."), time: time)
        )
    }

    /// The typed `data` of an event of `type`, checked field by field.
    private static func payload(
        _ type: EventType,
        _ data: FieldReader,
        time: Instant
    ) throws(EventValidationError) -> EventPayload {
        switch type {
        case .testResult: .testResult(try decodeTestResult(data))
        case .travel: .travel(try decodeTravel(data, time: time))
        case .declaration: .declaration(try decodeDeclaration(data))
        case .exposure: .exposure(try decodeExposure(data))
        case .riskArea: .riskArea(try decodeRiskArea(data))
        case .review: .review(try decodeReview(data, time: time))
        case .retraction: .retraction(try decodeRetraction(data))
        }
    }

    /// An archived event from the archive's columns (validated when the event was accepted, so taken as they
    /// are) and its remainder (``CloudEvent/archivedRemainder()``: the optional attributes and `data`, whose
    /// fields are checked as in ``decode(_:)``). No envelope is written out and parsed again: replays,
    /// explanations and rebuilds read archived events by the million.
    static func decodeArchived(
        _ remainder: [UInt8],
        id: String,
        source: String,
        typeName: String,
        subject: String,
        time: Instant,
        recordedTime: Instant?
    ) throws(EventValidationError) -> CloudEvent {
        let value: JSONValue
        do {
            value = try JSONParser.parse(remainder, limits: .event)
        } catch {
            throw malformed(error)
        }
        guard case .object(let members) = value else {
            throw EventValidationError(
                code: .malformedJSON,
                fieldPath: "",
                reason: "an archived remainder must be a JSON object"
            )
        }
        guard let type = FieldReader.enumCase(EventType.self, typeName) else {
            throw EventValidationError(
                code: .unsupportedType,
                fieldPath: "type",
                reason: "must be one of " + EventType.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        let rest = FieldReader(members: members, path: "")
        guard let dataValue = rest.value("data") else { throw rest.missing("data") }
        guard case .object(let dataMembers) = dataValue else {
            throw rest.wrongType("data", expected: "an object", actual: dataValue)
        }
        return CloudEvent(
            id: id,
            source: source,
            subject: subject,
            time: time,
            recordedTime: recordedTime,
            dataContentType: try rest.optionalString("datacontenttype"),
            dataSchema: try rest.optionalString("dataschema"),
            traceParent: try rest.optionalString("traceparent"),
            payload: try payload(type, FieldReader(members: dataMembers, path: "data."), time: time)
        )
    }

    private static func decodeTestResult(_ data: FieldReader) throws(EventValidationError) -> TestResult {
        try data.rejectUnknown(["test", "result", "lab"])
        let test: TestResult.Method = try data.requiredEnum("test")
        let result: TestResult.Outcome = try data.requiredEnum("result")
        let lab = try data.requiredString("lab")
        guard Contract.isLabel(lab, maximumLength: 256) else {
            throw data.invalid("lab", Contract.labelRule(256))
        }
        return TestResult(test: test, result: result, lab: lab)
    }

    private static func decodeTravel(_ data: FieldReader, time: Instant) throws(EventValidationError) -> Travel {
        try data.rejectUnknown(["mode", "carrier", "from", "to", "arrivedAt"])
        let mode: Travel.Mode = try data.requiredEnum("mode")
        let carrier = try data.optionalString("carrier")
        if let carrier, !Contract.isLabel(carrier, maximumLength: 128) {
            throw data.invalid("carrier", Contract.labelRule(128))
        }
        let from = try data.requiredAreaCode("from")
        let to = try data.requiredAreaCode("to")
        let arrivedAt = try data.requiredInstant("arrivedAt")
        guard arrivedAt >= time else { throw data.invalid("arrivedAt", "must not be before the event time") }
        return Travel(mode: mode, carrier: carrier, from: from, to: to, arrivedAt: arrivedAt)
    }

    private static func decodeDeclaration(_ data: FieldReader) throws(EventValidationError) -> Declaration {
        try data.rejectUnknown(["symptoms", "temperatureCelsius", "location"])
        guard let symptomsValue = data.value("symptoms") else { throw data.missing("symptoms") }
        guard case .array(let elements) = symptomsValue else {
            throw data.wrongType("symptoms", expected: "an array", actual: symptomsValue)
        }
        var symptoms: [Declaration.Symptom] = []
        symptoms.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            let path = "symptoms[\(index)]"
            guard case .string(let text) = element else {
                throw data.wrongType(path, expected: "a string", actual: element)
            }
            guard let symptom = FieldReader.enumCase(Declaration.Symptom.self, text) else {
                throw data.invalid(path, FieldReader.enumRule(Declaration.Symptom.self))
            }
            guard !symptoms.contains(symptom) else { throw data.invalid(path, "repeats an earlier symptom") }
            symptoms.append(symptom)
        }
        var temperature: Double?
        if let value = data.value("temperatureCelsius") {
            guard case .number(let number) = value else {
                throw data.wrongType("temperatureCelsius", expected: "a number", actual: value)
            }
            guard number >= 30, number <= 45 else {
                throw data.invalid("temperatureCelsius", "must be between 30 and 45 (degrees Celsius)")
            }
            temperature = number
        }
        let location = try data.optionalAreaCode("location")
        return Declaration(symptoms: symptoms, temperatureCelsius: temperature, location: location)
    }

    private static func decodeExposure(_ data: FieldReader) throws(EventValidationError) -> Exposure {
        try data.rejectUnknown(["kind", "caseRef"])
        let kind: Exposure.Kind = try data.requiredEnum("kind")
        let caseRef = try data.optionalString("caseRef")
        if let caseRef, !Contract.isLabel(caseRef, maximumLength: 128) {
            throw data.invalid("caseRef", Contract.labelRule(128))
        }
        return Exposure(kind: kind, caseRef: caseRef)
    }

    private static func decodeRiskArea(_ data: FieldReader) throws(EventValidationError) -> RiskAreaDesignation {
        try data.rejectUnknown(["level", "effectiveFrom", "effectiveUntil"])
        let level: RiskAreaDesignation.Level = try data.requiredEnum("level")
        let from = try data.requiredInstant("effectiveFrom")
        let until = try data.optionalInstant("effectiveUntil")
        if let until, until <= from {
            throw data.invalid("effectiveUntil", "must be after effectiveFrom (omit it for an open-ended designation)")
        }
        return RiskAreaDesignation(level: level, effectiveFrom: from, effectiveUntil: until)
    }

    private static func decodeReview(_ data: FieldReader, time: Instant) throws(EventValidationError) -> Review {
        try data.rejectUnknown(["status", "validUntil", "reason", "officer", "approvedBy", "approvedAt"])
        let status: CodeStatus = try data.requiredEnum("status")
        let validUntil = try data.requiredInstant("validUntil")
        guard validUntil > time else { throw data.invalid("validUntil", "must be after the event time") }
        let reason = try data.requiredString("reason")
        guard Contract.isText(reason) else { throw data.invalid("reason", Contract.textRule) }
        let officer = try data.requiredString("officer")
        guard Contract.isLabel(officer, maximumLength: 128) else {
            throw data.invalid("officer", Contract.labelRule(128))
        }
        let approvedBy = try data.optionalString("approvedBy")
        if let approvedBy, !Contract.isLabel(approvedBy, maximumLength: 128) {
            throw data.invalid("approvedBy", Contract.labelRule(128))
        }
        let approvedAt = try data.optionalInstant("approvedAt")
        let approval: ReviewApproval?
        switch (approvedBy, approvedAt) {
        case (nil, nil): approval = nil
        case (let officer?, let at?): approval = ReviewApproval(officer: officer, at: at)
        case (nil, _): throw data.missing("approvedBy")
        case (_, nil): throw data.missing("approvedAt")
        }
        return Review(status: status, validUntil: validUntil, reason: reason, officer: officer, approval: approval)
    }

    private static func decodeRetraction(_ data: FieldReader) throws(EventValidationError) -> Retraction {
        try data.rejectUnknown(["retracts", "reason"])
        let retracts = try data.requiredString("retracts")
        guard Contract.isEventID(retracts) else {
            throw data.invalid("retracts", "must be an event id: 1 to 128 visible ASCII characters")
        }
        let reason = try data.requiredString("reason")
        guard Contract.isText(reason) else { throw data.invalid("reason", Contract.textRule) }
        return Retraction(retracts: retracts, reason: reason)
    }
}

/// The result of decoding a batch: one result per event, in order, or a whole-body error.
public struct EventBatch: Sendable {
    /// One entry per event in the body, in order.
    public var items: [Result<CloudEvent, EventValidationError>]
    /// Set when the body as a whole is unusable (not JSON, not an array, empty); `items` is then empty.
    public var error: EventValidationError?

    public init(items: [Result<CloudEvent, EventValidationError>], error: EventValidationError?) {
        self.items = items
        self.error = error
    }
}

/// Value rules of the contract shared by the decoder and the schemas' `$defs` (schemas/defs.schema.json).
enum Contract {
    static let envelopeFields: [String] = [
        "specversion", "id", "source", "type", "subject", "time", "recordedtime", "datacontenttype", "dataschema",
        "traceparent", "data",
    ]
    static let areaCodeRule = "must be a 6-digit area code not starting with 0"
    static let textRule = "must be 1 to 2000 characters without control characters other than tab and line breaks"

    static func labelRule(_ maximumLength: Int) -> String {
        "must be 1 to \(maximumLength) characters without control characters"
    }

    /// Event ids, person subjects and `retracts`: 1...128 visible ASCII characters (U+0021...U+007E).
    static func isEventID(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= 128 else { return false }
        return utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// `source`: 1...256 characters of RFC 3986's unreserved, reserved and `%`.
    static func isSource(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= 256 else { return false }
        return utf8.allSatisfy(isURICharacter)
    }

    /// `dataschema`: an absolute URI (`scheme:` then URI characters), at most 512 characters.
    static func isAbsoluteURI(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count <= 512, utf8.allSatisfy(isURICharacter), let colon = utf8.firstIndex(of: UInt8(ascii: ":")),
            colon > 0, isLetter(utf8[0])
        else { return false }
        return utf8[1..<colon].allSatisfy {
            isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ".")
                || $0 == UInt8(ascii: "-")
        }
    }

    /// `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase.
    static func isTraceParent(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 55, utf8[0] == UInt8(ascii: "0"), utf8[1] == UInt8(ascii: "0") else { return false }
        for (index, byte) in utf8.enumerated().dropFirst(2) {
            if index == 2 || index == 35 || index == 52 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f")) else { return false }
            }
        }
        return true
    }

    /// Free-text names (lab, carrier, officer, caseRef): 1...`maximumLength` Unicode scalars, no control
    /// characters (U+0000...U+001F, U+007F).
    static func isLabel(_ text: String, maximumLength: Int) -> Bool {
        var count = 0
        for scalar in text.unicodeScalars {
            guard scalar.value >= 0x20, scalar.value != 0x7F else { return false }
            count += 1
        }
        return count >= 1 && count <= maximumLength
    }

    /// Reasons: 1...2000 Unicode scalars, no control characters except tab, line feed and carriage return.
    static func isText(_ text: String) -> Bool {
        var count = 0
        for scalar in text.unicodeScalars {
            let value = scalar.value
            guard value >= 0x20 || value == 0x09 || value == 0x0A || value == 0x0D, value != 0x7F else {
                return false
            }
            count += 1
        }
        return count >= 1 && count <= 2000
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func isURICharacter(_ byte: UInt8) -> Bool {
        if isLetter(byte) || isDigit(byte) { return true }
        switch byte {
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"),
            UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "["), UInt8(ascii: "]"),
            UInt8(ascii: "@"), UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","),
            UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }
}

/// Reads the members of one JSON object, producing errors that name `path + field`.
struct FieldReader {
    let members: [JSONMember]
    let path: String

    func value(_ field: String) -> JSONValue? {
        for member in members where member.key.hasSameBytes(as: field) { return member.value }
        return nil
    }

    func rejectUnknown(_ known: [String]) throws(EventValidationError) {
        for member in members where !known.contains(where: { $0.hasSameBytes(as: member.key) }) {
            throw EventValidationError(
                code: .unknownField,
                fieldPath: path + FieldReader.printable(member.key),
                reason: "is not defined by the contract"
            )
        }
    }

    /// Field names are echoed in paths, but a member name is publisher input too: only names that look like
    /// field names (up to 32 ASCII letters, digits, '_' or '-', starting with a letter or '_', at most 4
    /// digits, so no identity or phone number) are echoed; others are replaced so that an error cannot carry
    /// personal data into logs.
    static func printable(_ key: String) -> String {
        let utf8 = key.utf8
        guard let first = utf8.first, utf8.count <= 32, isLetter(first) || first == UInt8(ascii: "_") else {
            return "<unprintable field name>"
        }
        var digits = 0
        for byte in utf8 {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                digits += 1
            } else if !(isLetter(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")) {
                return "<unprintable field name>"
            }
        }
        return digits <= 4 ? key : "<unprintable field name>"
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    func missing(_ field: String) -> EventValidationError {
        EventValidationError(code: .missingField, fieldPath: path + field, reason: "is required")
    }

    func invalid(_ field: String, _ reason: String) -> EventValidationError {
        EventValidationError(code: .invalidValue, fieldPath: path + field, reason: reason)
    }

    func wrongType(_ field: String, expected: String, actual: JSONValue) -> EventValidationError {
        EventValidationError(
            code: .wrongType,
            fieldPath: path + field,
            reason: "must be \(expected), not \(actual.typeName)"
        )
    }

    func requiredString(_ field: String) throws(EventValidationError) -> String {
        guard let value = value(field) else { throw missing(field) }
        guard case .string(let text) = value else { throw wrongType(field, expected: "a string", actual: value) }
        return text
    }

    func optionalString(_ field: String) throws(EventValidationError) -> String? {
        guard let value = value(field) else { return nil }
        guard case .string(let text) = value else { throw wrongType(field, expected: "a string", actual: value) }
        return text
    }

    /// The case whose raw value has exactly the bytes of `text` (String `==` would also match canonically
    /// equivalent spellings, which JSON Schema's `enum` does not).
    static func enumCase<E: RawRepresentable & CaseIterable>(_: E.Type, _ text: String) -> E?
    where E.RawValue == String {
        E.allCases.first { $0.rawValue.hasSameBytes(as: text) }
    }

    static func enumRule<E: RawRepresentable & CaseIterable>(_: E.Type) -> String where E.RawValue == String {
        "must be one of " + E.allCases.map(\.rawValue).joined(separator: ", ")
    }

    func requiredEnum<E: RawRepresentable & CaseIterable>(_ field: String) throws(EventValidationError) -> E
    where E.RawValue == String {
        let text = try requiredString(field)
        guard let value = FieldReader.enumCase(E.self, text) else { throw invalid(field, FieldReader.enumRule(E.self)) }
        return value
    }

    func requiredInstant(_ field: String) throws(EventValidationError) -> Instant {
        guard let instant = try optionalInstant(field) else { throw missing(field) }
        return instant
    }

    func optionalInstant(_ field: String) throws(EventValidationError) -> Instant? {
        guard let text = try optionalString(field) else { return nil }
        guard let instant = Instant(rfc3339: text) else {
            throw invalid(
                field,
                "must be an RFC 3339 date-time with at most 6 fractional digits, e.g. 2020-04-03T12:00:00Z"
            )
        }
        return instant
    }

    func requiredAreaCode(_ field: String) throws(EventValidationError) -> AreaCode {
        guard let code = try optionalAreaCode(field) else { throw missing(field) }
        return code
    }

    func optionalAreaCode(_ field: String) throws(EventValidationError) -> AreaCode? {
        guard let text = try optionalString(field) else { return nil }
        guard let code = AreaCode(text) else { throw invalid(field, Contract.areaCodeRule) }
        return code
    }
}
