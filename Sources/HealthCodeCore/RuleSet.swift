import Crypto

/// A versioned code policy as data (projections/rules/reference-v1.json): rule names, colours, durations,
/// thresholds and precedence live in the file; the core only knows the rule *kinds* (how a kind of rule
/// fires). Changing close-contact from 14 to 10 days is an edit of the file, which changes its version and
/// content hash, and every decision cites both. Immutable once decoded, so the hash always describes the rules.
public struct RuleSet: Sendable, Hashable {
    /// Stable name of the policy, e.g. `reference-v1`.
    public let id: String
    /// Semantic version of this revision of the policy, e.g. `1.0.0`.
    public let version: String
    /// `sha256:<hex>` of the file's bytes, so that `sha256sum` on the file reproduces it.
    public let contentHash: String
    /// Human-readable title.
    public let title: String
    /// Colours from most to least severe; the status is the most severe colour among firing rules.
    public let precedence: [CodeStatus]
    /// Risk-area levels from lowest to highest; an area's level is the highest of its own and its ancestors',
    /// and an area with no effective designation has the lowest.
    public let areaLevels: [RiskAreaDesignation.Level]
    /// The rules; reasons are listed in this order, the override first.
    public let rules: [PolicyRule]

    /// What decisions cite of this rule set.
    public var identity: RuleSetIdentity { RuleSetIdentity(id: id, version: version, hash: contentHash) }

    /// Parses and validates a rule set file; errors name the offending field (`rules[3].duration`).
    public static func decode(_ bytes: some Collection<UInt8>) throws(RuleSetError) -> RuleSet {
        let array = Array(bytes)
        let value: JSONValue
        do {
            value = try JSONParser.parse(array)
        } catch {
            throw RuleSetError(
                code: .malformedJSON,
                fieldPath: "",
                reason: "not valid JSON at byte \(error.offset): \(error.reason)"
            )
        }
        return try RuleSetReader.ruleSet(value, contentHash: sha256Name(of: array))
    }
}

/// One rule of a rule set: a name, a description for people, and a kind with its parameters.
public struct PolicyRule: Sendable, Hashable {
    /// How a rule fires; parameters come from the rule set file.
    public enum Kind: Sendable, Hashable {
        /// The latest review overrides the status on `[review.time, review.validUntil)`.
        case reviewOverride
        /// The latest positive `test` fires with no end until *cleared*: at the earliest negative
        /// `clearingTest` N2 such that some other negative N1 after the positive has N2 − N1 ≥ `clearingGap`.
        case positiveTestUntilCleared(
            colour: CodeStatus,
            test: TestResult.Method,
            clearingTest: TestResult.Method,
            clearingGap: Duration
        )
        /// Fires on `[c, c + duration)` after the rule named `after` (a `positiveTestUntilCleared`) was
        /// cleared at `c`.
        case recoveryObservation(colour: CodeStatus, after: String, duration: Duration)
        /// The latest positive `test` at t fires on `[t, t + duration)` unless a negative
        /// `cancelledByNegative` test follows it.
        case positiveTestWindow(
            colour: CodeStatus,
            test: TestResult.Method,
            duration: Duration,
            cancelledByNegative: TestResult.Method?
        )
        /// Each exposure of `exposure` kind at t fires on `[t, t + duration)`.
        case exposure(colour: CodeStatus, exposure: Exposure.Kind, duration: Duration)
        /// Each presence (area X, t) where X's level at t is `areaLevel` fires on `[t, t + duration)`.
        case riskAreaPresence(colour: CodeStatus, areaLevel: RiskAreaDesignation.Level, duration: Duration)
        /// Each declaration at t with symptoms, or a temperature ≥ `temperatureAtLeastCelsius`, fires on
        /// `[t, t + duration)` unless a negative `cancelledByNegative` test follows it.
        case symptoms(
            colour: CodeStatus,
            temperatureAtLeastCelsius: Double,
            duration: Duration,
            cancelledByNegative: TestResult.Method?
        )
    }

    /// Unique within the rule set; cited in reasons.
    public var name: String
    public var description: String
    public var kind: Kind

    public init(name: String, description: String, kind: Kind) {
        self.name = name
        self.description = description
        self.kind = kind
    }
}

/// Why a rule set file was rejected; `fieldPath` names the field (`rules[3].duration`).
public struct RuleSetError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: EventValidationError.Code
    public var fieldPath: String
    public var reason: String

    public init(code: EventValidationError.Code, fieldPath: String, reason: String) {
        self.code = code
        self.fieldPath = fieldPath
        self.reason = reason
    }

    /// For example `rules[3].duration: invalid-value: must be an ISO 8601 duration ...`.
    public var description: String {
        (fieldPath.isEmpty ? "" : fieldPath + ": ") + "\(code.rawValue): \(reason)"
    }
}

/// Reads the rule set file format, reusing the event decoder's field reader for its error paths.
private enum RuleSetReader {
    static func ruleSet(_ value: JSONValue, contentHash: String) throws(RuleSetError) -> RuleSet {
        guard case .object(let members) = value else {
            throw RuleSetError(code: .wrongType, fieldPath: "", reason: "a rule set must be a JSON object")
        }
        let top = FieldReader(members: members, path: "")
        return try mapped { () throws(EventValidationError) in
            try top.rejectUnknown(["id", "version", "title", "precedence", "areaLevels", "rules"])
            let id = try top.requiredString("id")
            guard isToken(id, first: lowerOrDigit) else {
                throw top.invalid("id", "must be 1 to 64 of a-z, 0-9, '.', '-', starting with a letter or digit")
            }
            let version = try top.requiredString("version")
            guard isSemanticVersion(version) else {
                throw top.invalid("version", "must be a semantic version MAJOR.MINOR.PATCH, e.g. 1.0.0")
            }
            let title = try top.requiredString("title")
            guard Contract.isLabel(title, maximumLength: 200) else {
                throw top.invalid("title", Contract.labelRule(200))
            }
            let precedence: [CodeStatus] = try permutation(top, "precedence")
            let areaLevels: [RiskAreaDesignation.Level] = try permutation(top, "areaLevels")
            guard let rulesValue = top.value("rules") else { throw top.missing("rules") }
            guard case .array(let elements) = rulesValue else {
                throw top.wrongType("rules", expected: "an array", actual: rulesValue)
            }
            var rules: [PolicyRule] = []
            for (index, element) in elements.enumerated() {
                let path = "rules[\(index)]"
                guard case .object(let ruleMembers) = element else {
                    throw top.wrongType(path, expected: "an object", actual: element)
                }
                let rule = try self.rule(FieldReader(members: ruleMembers, path: path + "."))
                guard !rules.contains(where: { $0.name == rule.name }) else {
                    throw top.invalid(path + ".name", "repeats the name of an earlier rule")
                }
                rules.append(rule)
            }
            for (index, rule) in rules.enumerated() {
                if case .recoveryObservation(_, let after, _) = rule.kind {
                    let target = rules.first { $0.name == after }
                    guard case .positiveTestUntilCleared? = target?.kind else {
                        throw top.invalid(
                            "rules[\(index)].after",
                            "must name a rule of kind positive-test-until-cleared in this rule set"
                        )
                    }
                }
            }
            let overrides = rules.indices.filter { rules[$0].kind == .reviewOverride }
            if overrides.count > 1 {
                throw top.invalid("rules[\(overrides[1])].kind", "only one review-override rule is allowed")
            }
            return RuleSet(
                id: id,
                version: version,
                contentHash: contentHash,
                title: title,
                precedence: precedence,
                areaLevels: areaLevels,
                rules: rules
            )
        }
    }

    static func mapped<T>(_ body: () throws(EventValidationError) -> T) throws(RuleSetError) -> T {
        do {
            return try body()
        } catch {
            let reason = error.code == .unknownField ? "is not defined by the rule set format" : error.reason
            throw RuleSetError(code: error.code, fieldPath: error.fieldPath, reason: reason)
        }
    }

    static func rule(_ rule: FieldReader) throws(EventValidationError) -> PolicyRule {
        let name = try rule.requiredString("name")
        guard isToken(name, first: lower) else {
            throw rule.invalid("name", "must be 1 to 64 of a-z, 0-9, '-', starting with a letter")
        }
        let description = try rule.requiredString("description")
        guard Contract.isText(description) else { throw rule.invalid("description", Contract.textRule) }
        let kindName = try rule.requiredString("kind")
        let common = ["name", "description", "kind"]
        let kind: PolicyRule.Kind
        switch kindName {
        case "review-override":
            try rule.rejectUnknown(common)
            kind = .reviewOverride
        case "positive-test-until-cleared":
            try rule.rejectUnknown(common + ["colour", "test", "clearance"])
            guard let clearanceValue = rule.value("clearance") else { throw rule.missing("clearance") }
            guard case .object(let clearanceMembers) = clearanceValue else {
                throw rule.wrongType("clearance", expected: "an object", actual: clearanceValue)
            }
            let clearance = FieldReader(members: clearanceMembers, path: rule.path + "clearance.")
            try clearance.rejectUnknown(["test", "minimumGap"])
            kind = .positiveTestUntilCleared(
                colour: try colour(rule),
                test: try rule.requiredEnum("test"),
                clearingTest: try clearance.requiredEnum("test"),
                clearingGap: try duration(clearance, "minimumGap")
            )
        case "recovery-observation":
            try rule.rejectUnknown(common + ["colour", "after", "duration"])
            kind = .recoveryObservation(
                colour: try colour(rule),
                after: try rule.requiredString("after"),
                duration: try duration(rule, "duration")
            )
        case "positive-test-window":
            try rule.rejectUnknown(common + ["colour", "test", "duration", "cancelledByNegative"])
            kind = .positiveTestWindow(
                colour: try colour(rule),
                test: try rule.requiredEnum("test"),
                duration: try duration(rule, "duration"),
                cancelledByNegative: try optionalTest(rule, "cancelledByNegative")
            )
        case "exposure":
            try rule.rejectUnknown(common + ["colour", "exposure", "duration"])
            kind = .exposure(
                colour: try colour(rule),
                exposure: try rule.requiredEnum("exposure"),
                duration: try duration(rule, "duration")
            )
        case "risk-area-presence":
            try rule.rejectUnknown(common + ["colour", "areaLevel", "duration"])
            kind = .riskAreaPresence(
                colour: try colour(rule),
                areaLevel: try rule.requiredEnum("areaLevel"),
                duration: try duration(rule, "duration")
            )
        case "symptoms":
            try rule.rejectUnknown(common + ["colour", "temperatureAtLeastCelsius", "duration", "cancelledByNegative"])
            guard let thresholdValue = rule.value("temperatureAtLeastCelsius") else {
                throw rule.missing("temperatureAtLeastCelsius")
            }
            guard case .number(let threshold) = thresholdValue else {
                throw rule.wrongType("temperatureAtLeastCelsius", expected: "a number", actual: thresholdValue)
            }
            guard threshold >= 30, threshold <= 45 else {
                throw rule.invalid("temperatureAtLeastCelsius", "must be between 30 and 45 (degrees Celsius)")
            }
            kind = .symptoms(
                colour: try colour(rule),
                temperatureAtLeastCelsius: threshold,
                duration: try duration(rule, "duration"),
                cancelledByNegative: try optionalTest(rule, "cancelledByNegative")
            )
        default:
            throw rule.invalid(
                "kind",
                "must be one of review-override, positive-test-until-cleared, recovery-observation, "
                    + "positive-test-window, exposure, risk-area-presence, symptoms"
            )
        }
        return PolicyRule(name: name, description: description, kind: kind)
    }

    static func colour(_ rule: FieldReader) throws(EventValidationError) -> CodeStatus {
        try rule.requiredEnum("colour")
    }

    static func optionalTest(_ rule: FieldReader, _ field: String) throws(EventValidationError) -> TestResult.Method? {
        guard rule.value(field) != nil else { return nil }
        return try rule.requiredEnum(field) as TestResult.Method
    }

    static func duration(_ reader: FieldReader, _ field: String) throws(EventValidationError) -> Duration {
        let text = try reader.requiredString(field)
        guard let seconds = parseDuration(text), seconds > 0 else {
            throw reader.invalid(
                field,
                "must be a positive ISO 8601 duration in days, hours, minutes and seconds, e.g. P14D or PT24H"
            )
        }
        return .seconds(seconds)
    }

    /// Parses `PnDTnHnMnS` (each part optional, at least one present); a day is exactly 24 hours because
    /// all instants are UTC. Years, months and weeks are rejected: their length depends on the calendar.
    static func parseDuration(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 3, bytes.count <= 40, bytes[0] == UInt8(ascii: "P") else { return nil }
        var total: Int64 = 0
        var number: Int64?
        var inTime = false
        var sawPart = false
        var lastUnitRank = -1
        for byte in bytes.dropFirst() {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let (scaled, overflow) = (number ?? 0).multipliedReportingOverflow(by: 10)
                guard !overflow, scaled <= 1_000_000_000 else { return nil }
                number = scaled + Int64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "T"):
                guard !inTime, number == nil else { return nil }
                inTime = true
            default:
                let unit: (rank: Int, seconds: Int64, time: Bool)
                switch byte {
                case UInt8(ascii: "D"): unit = (0, 86_400, false)
                case UInt8(ascii: "H"): unit = (1, 3_600, true)
                case UInt8(ascii: "M"): unit = (2, 60, true)
                case UInt8(ascii: "S"): unit = (3, 1, true)
                default: return nil
                }
                guard let value = number, unit.time == inTime, unit.rank > lastUnitRank else { return nil }
                total += value * unit.seconds
                lastUnitRank = unit.rank
                number = nil
                sawPart = true
            }
        }
        guard sawPart, number == nil, !(inTime && lastUnitRank < 1) else { return nil }
        return total
    }

    static func permutation<E: RawRepresentable & CaseIterable & Equatable>(
        _ reader: FieldReader,
        _ field: String
    )
        throws(EventValidationError) -> [E] where E.RawValue == String
    {
        guard let value = reader.value(field) else { throw reader.missing(field) }
        guard case .array(let elements) = value else {
            throw reader.wrongType(field, expected: "an array", actual: value)
        }
        var result: [E] = []
        for (index, element) in elements.enumerated() {
            let path = "\(field)[\(index)]"
            guard case .string(let text) = element else {
                throw reader.wrongType(path, expected: "a string", actual: element)
            }
            guard let item = FieldReader.enumCase(E.self, text) else {
                throw reader.invalid(path, FieldReader.enumRule(E.self))
            }
            guard !result.contains(item) else { throw reader.invalid(path, "repeats an earlier entry") }
            result.append(item)
        }
        guard result.count == E.allCases.count else {
            throw reader.invalid(field, "must list each of " + E.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return result
    }

    static func lower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }

    static func lowerOrDigit(_ byte: UInt8) -> Bool {
        lower(byte) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    static func isToken(_ text: String, first: (UInt8) -> Bool) -> Bool {
        let bytes = Array(text.utf8)
        guard let head = bytes.first, bytes.count <= 64, first(head) else { return false }
        return bytes.allSatisfy { lowerOrDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    /// `MAJOR.MINOR.PATCH` without leading zeros, optionally followed by `-prerelease` and/or `+build` made of
    /// ASCII letters, digits, `.` and `-`.
    static func isSemanticVersion(_ text: String) -> Bool {
        var core = Substring(text)
        if let plus = core.firstIndex(of: "+") {
            guard isIdentifierList(core[core.index(after: plus)...]) else { return false }
            core = core[..<plus]
        }
        if let dash = core.firstIndex(of: "-") {
            guard isIdentifierList(core[core.index(after: dash)...]) else { return false }
            core = core[..<dash]
        }
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 9 && part.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
                    && (part == "0" || part.first != "0")
            }
    }

    static func isIdentifierList(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.allSatisfy { part in
            !part.isEmpty
                && part.utf8.allSatisfy {
                    lowerOrDigit($0) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 == UInt8(ascii: "-")
                }
        }
    }
}

/// `sha256:<hex>` of `bytes`: how rule sets and evidence name contents, so that `sha256sum` reproduces it.
func sha256Name(of bytes: [UInt8]) -> String {
    "sha256:"
        + SHA256.hash(data: bytes).map { byte in byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }
        .joined()
}
