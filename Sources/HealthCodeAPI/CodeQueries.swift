import HealthCodeCore
import Logging

/// A person's code as the API returns it.
public struct PersonCode: Sendable, Codable, Hashable {
    public var subject: String
    public var status: CodeStatus
    public var validUntil: Instant?
    public var reasons: [CodeReason]
    public var ruleSet: RuleSetReference
    /// The instant the code was evaluated at.
    public var evaluatedAt: Instant
    /// The instant up to which recorded events were taken into account (`knownAt`).
    public var knownAt: Instant

    /// Which rule set produced a code.
    public struct RuleSetReference: Sendable, Codable, Hashable {
        public var id: String
        public var version: String
        public var hash: String
    }

    enum CodingKeys: String, CodingKey {
        case subject, status, validUntil, reasons, ruleSet, evaluatedAt, knownAt
    }

    enum ReasonKeys: String, CodingKey {
        case rule, colour, until, events
    }

    /// Encodes absent instants as explicit `null`s: "no end" is an answer, not a missing field.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(subject, forKey: .subject)
        try container.encode(status, forKey: .status)
        try container.encode(validUntil, forKey: .validUntil)
        var reasonsContainer = container.nestedUnkeyedContainer(forKey: .reasons)
        for reason in reasons {
            var reasonContainer = reasonsContainer.nestedContainer(keyedBy: ReasonKeys.self)
            try reasonContainer.encode(reason.rule, forKey: .rule)
            try reasonContainer.encode(reason.colour, forKey: .colour)
            try reasonContainer.encode(reason.until, forKey: .until)
            try reasonContainer.encode(reason.events, forKey: .events)
        }
        try container.encode(ruleSet, forKey: .ruleSet)
        try container.encode(evaluatedAt, forKey: .evaluatedAt)
        try container.encode(knownAt, forKey: .knownAt)
    }

    /// The JSON answer, the same as the `Encodable` form under `JSONResponse`'s sorted keys but written
    /// directly: code answers are the API's hottest response.
    public func jsonBytes() -> [UInt8] {
        var out = JSONWriter(capacity: 320 + reasons.count * 200)
        out.raw("{")
        out.key("evaluatedAt")
        out.instant(evaluatedAt)
        out.raw(",")
        out.key("knownAt")
        out.instant(knownAt)
        out.raw(",")
        out.key("reasons")
        out.array(reasons) { out, reason in
            out.raw("{")
            out.key("colour")
            out.string(reason.colour.rawValue)
            out.raw(",")
            out.key("events")
            out.array(reason.events) { out, event in
                out.raw("{")
                out.key("id")
                out.string(event.id)
                out.raw(",")
                out.key("source")
                out.string(event.source)
                out.raw("}")
            }
            out.raw(",")
            out.key("rule")
            out.string(reason.rule)
            out.raw(",")
            out.key("until")
            out.instant(reason.until)
            out.raw("}")
        }
        out.raw(",")
        out.key("ruleSet")
        out.raw("{")
        out.key("hash")
        out.string(ruleSet.hash)
        out.raw(",")
        out.key("id")
        out.string(ruleSet.id)
        out.raw(",")
        out.key("version")
        out.string(ruleSet.version)
        out.raw("},")
        out.key("status")
        out.string(status.rawValue)
        out.raw(",")
        out.key("subject")
        out.string(subject)
        out.raw(",")
        out.key("validUntil")
        out.instant(validUntil)
        out.raw("}")
        return out.bytes
    }

    init(subject: String, decision: CodeDecision, evaluatedAt: Instant, knownAt: Instant) {
        self.subject = subject
        self.status = decision.status
        self.validUntil = decision.validUntil
        self.reasons = decision.reasons
        self.ruleSet = RuleSetReference(
            id: decision.ruleSetID,
            version: decision.ruleSetVersion,
            hash: decision.ruleSetHash
        )
        self.evaluatedAt = evaluatedAt
        self.knownAt = knownAt
    }
}

/// Answers code queries: the materialised code when it is still valid, else the policy evaluated
/// on the stored person state (for another instant, an earlier `knownAt`, or an expired code).
public struct CodeQueries: Sendable {
    private let states: any PersonStates
    private let records: any PersonRecords
    private let materialised: CodeCache
    private let catalog: RiskAreaCatalog
    private let rules: RuleSetCatalog
    private let refreshInterval: Duration

    /// - Parameter materialised: the materialised codes, kept in memory or read (``CodeCache``).
    /// - Parameter records: the archive, replayed for instants a pruned state no longer answers.
    /// - Parameter rules: the rule sets in force over time: an answer as known at `knownAt` is evaluated with
    ///   the one in force then (re-read every `refreshInterval`, like the designations).
    public init(
        states: any PersonStates,
        records: any PersonRecords,
        materialised: CodeCache,
        catalog: RiskAreaCatalog,
        rules: RuleSetCatalog,
        refreshInterval: Duration
    ) {
        self.states = states
        self.records = records
        self.materialised = materialised
        self.catalog = catalog
        self.rules = rules
        self.refreshInterval = refreshInterval
    }

    /// The policy of the rule set in force at `knownAt`: what was known then is judged by the rules of then.
    public func policy(knownAt: Instant) async throws -> Policy {
        try await rules.policy(at: knownAt, maximumAge: refreshInterval)
    }

    /// `ruleSet` when an asker named one, else the policy in force at `knownAt`.
    public func policy(knownAt: Instant, ruleSet: Policy?) async throws -> Policy {
        if let ruleSet { return ruleSet }
        return try await policy(knownAt: knownAt)
    }

    /// The policy of the activated rule set an asker names (`ruleSet=`, `--rules`): its hash or `ID@VERSION`;
    /// `nil` when none has that name. To ask how a decision would have been under other rules than those of the
    /// time. - Throws: ``RuleSetNameError`` when `ID@VERSION` fits rule sets of different contents.
    public func policy(named name: String) async throws -> Policy? {
        try await rules.policy(named: name)
    }

    /// `subject`'s current code if its materialised code is kept in memory and still in force; `nil`
    /// when answering needs the database (nothing kept, expired, or another rule set in force).
    public func keptCode(of subject: String, now: Instant) -> PersonCode? {
        guard let kept = materialised.kept(of: subject, now: now), let stored = kept else { return nil }
        return current(stored, of: subject, now: now)
    }

    /// A materialised code as the answer now, if it still is the answer: made before `now` by the rule
    /// set in force and not yet expired.
    private func current(_ stored: MaterialisedCode, of subject: String, now: Instant) -> PersonCode? {
        guard stored.evaluatedAt <= now, stored.decision.ruleSetHash == rules.policy(at: now).ruleSet.contentHash,
            stored.decision.validUntil.map({ $0 > now }) ?? true
        else { return nil }
        return PersonCode(subject: subject, decision: stored.decision, evaluatedAt: now, knownAt: now)
    }

    /// The code of `subject` at `at` as known at `knownAt` (`nil`: the same as `at`), judged by the rules in
    /// force at `knownAt` or by `ruleSet` if given (``policy(named:)``); a person nothing is recorded about gets
    /// the policy's answer for an empty history.
    public func code(
        of subject: String,
        at: Instant,
        knownAt: Instant?,
        ruleSet: Policy? = nil,
        now: Instant
    ) async throws -> PersonCode {
        if let code = try await knownCode(of: subject, at: at, knownAt: knownAt, ruleSet: ruleSet, now: now) {
            return code
        }
        let knownAt = knownAt ?? at
        return try await evaluate(
            PersonState(),
            of: subject,
            at: at,
            knownAt: knownAt,
            policy: policy(knownAt: knownAt, ruleSet: ruleSet)
        )
    }

    /// Like ``code(of:at:knownAt:ruleSet:now:)``, but `nil` for a person nothing is recorded about (neither a
    /// materialised code nor a state): whether such a person gets a code is the caller's policy
    /// (``QueryAPIConfiguration/unknownPeople``).
    public func knownCode(
        of subject: String,
        at: Instant,
        knownAt: Instant?,
        ruleSet: Policy? = nil,
        now: Instant
    ) async throws
        -> PersonCode?
    {
        let knownAt = knownAt ?? at
        if at == now, knownAt == now, ruleSet == nil, let stored = try await materialised.code(of: subject, now: now),
            let code = current(stored, of: subject, now: now)
        {
            return code
        }
        let policy = try await policy(knownAt: knownAt, ruleSet: ruleSet)
        guard let state = try await state(of: subject, answering: at, policy: policy) else { return nil }
        return try await evaluate(state, of: subject, at: at, knownAt: knownAt, policy: policy)
    }

    private func evaluate(
        _ state: PersonState,
        of subject: String,
        at: Instant,
        knownAt: Instant,
        policy: Policy
    ) async throws
        -> PersonCode
    {
        let areas = try await catalog.designations(maximumAge: refreshInterval)
        let decision = policy.evaluate(state, areas: areas, at: at, knownAt: knownAt)
        return PersonCode(subject: subject, decision: decision, evaluatedAt: at, knownAt: knownAt)
    }

    /// `policy` over `subject`'s history and the current designations, to evaluate at many instants
    /// (`at`, `knownAt`) from `earliest` on without reading them again.
    public func replay(of subject: String, from earliest: Instant, policy: Policy) async throws -> PersonReplay {
        PersonReplay(
            state: try await state(of: subject, answering: earliest, policy: policy) ?? PersonState(),
            areas: try await catalog.designations(maximumAge: refreshInterval),
            policy: policy
        )
    }

    /// `events` (a person's archive) to evaluate with `policy` at rising instants with the current designations.
    public func risingEvaluation(of events: [ArchivedPersonEvent], policy: Policy) async throws -> RisingEvaluation {
        let areas = try await catalog.designations(maximumAge: refreshInterval)
        return RisingEvaluation(events: events.map(\.event), policy: policy, areas: areas)
    }

    /// A state of `subject` that evaluates at `at` and later as the whole history does: the stored one, or,
    /// when that was pruned after `at`, the archived events that can matter from `at` on folded anew;
    /// `nil` for a person nothing is recorded about.
    private func state(of subject: String, answering at: Instant, policy: Policy) async throws -> PersonState? {
        guard let stored = try await states.personState(of: subject) else { return nil }
        guard !stored.answers(at: at, for: policy) else { return stored }
        var state = PersonState()
        for archived in try await records.archivedEvents(
            of: subject,
            relevantFrom: policy.relevanceCutoff(at: at),
            through: nil
        ) {
            state.apply(archived.event)
        }
        return state
    }
}

/// A person's history and the designations, read once, evaluated at many instants (from the earliest the
/// replay was made for on).
public struct PersonReplay: Sendable {
    let state: PersonState
    let areas: RiskAreaMap
    let policy: Policy

    /// The code at `at` as known at `knownAt`.
    public func decision(at: Instant, knownAt: Instant) -> CodeDecision {
        policy.evaluate(state, areas: areas, at: at, knownAt: knownAt)
    }

    /// The events withdrawn by retractions visible at `at` as known at `knownAt`.
    public func retracted(at: Instant, knownAt: Instant) -> Set<EventReference> {
        state.retractedEvents(at: at, knownAt: knownAt)
    }
}
