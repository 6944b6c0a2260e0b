/// Why an event (or a batch) does not satisfy the contract in schemas/.
///
/// `fieldPath` names the offending field (`data.result`, `data.symptoms[1]`, `time`, or `""` for the whole
/// event) and `reason` says what is wrong with it. Neither ever contains a payload value or a subject: errors
/// end up in logs and HTTP responses, and must not leak personal data.
public struct EventValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of violation.
    public enum Code: String, Sendable, Hashable, Codable {
        /// Not JSON (RFC 8259, UTF-8, no duplicate member names).
        case malformedJSON = "malformed-json"
        /// A field, or the event itself, has the wrong JSON type.
        case wrongType = "wrong-type"
        /// A required field is absent.
        case missingField = "missing-field"
        /// A field the contract does not define.
        case unknownField = "unknown-field"
        /// A value of the right type that breaks a rule (enum, format, bounds, ordering).
        case invalidValue = "invalid-value"
        /// `type` is not one of the contract's event types.
        case unsupportedType = "unsupported-type"
        /// A batch without any event.
        case emptyBatch = "empty-batch"
        /// JSON larger than the contract allows anywhere (more members, elements, nesting, or a longer string
        /// or number); refused while parsing, before the oversized part is read into memory.
        case tooLarge = "too-large"
        /// A batch of more events than the receiver accepts in one request.
        case batchTooLarge = "batch-too-large"
    }

    public var code: Code
    /// The offending field: `data.result`, `data.symptoms[1]`, `time`; `""` for the whole event or batch.
    public var fieldPath: String
    /// What is wrong, without any payload value.
    public var reason: String
    /// Position of the event in its batch (0-based), set by batch decoding.
    public var eventIndex: Int?
    /// The event's `id` when it could be read, set by batch decoding (not part of ``description``).
    public var eventID: String?
    /// 1-based line of the event in an NDJSON batch, set by batch decoding.
    public var line: Int?

    public init(
        code: Code,
        fieldPath: String,
        reason: String,
        eventIndex: Int? = nil,
        eventID: String? = nil,
        line: Int? = nil
    ) {
        self.code = code
        self.fieldPath = fieldPath
        self.reason = reason
        self.eventIndex = eventIndex
        self.eventID = eventID
        self.line = line
    }

    /// For example `line 7: data.result: invalid-value: must be one of positive, negative`.
    public var description: String {
        var parts: [String] = []
        if let line {
            parts.append("line \(line)")
        } else if let eventIndex {
            parts.append("event \(eventIndex)")
        }
        if !fieldPath.isEmpty { parts.append(fieldPath) }
        parts.append("\(code.rawValue): \(reason)")
        return parts.joined(separator: ": ")
    }
}
