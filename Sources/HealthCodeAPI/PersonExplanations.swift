import Foundation
import HealthCodeCore

/// Why a person has a code at an instant, as known at an instant: the timeline of the person's
/// archived events (which ones were known), every firing rule with the interval it fires in and
/// the events behind it, and the rule set (id, version, content hash) that decided.
///
/// Long histories are explained a page at a time (``PersonExplanations/explain(_:at:knownAt:page:limit:)``):
/// the first page lists the latest `limit` events at or before `at` (then those after `at` while there is
/// room) and the firing rules; `earlierPage` continues with the events before, and with when the rules
/// that still fire there started. A history that fits one page is answered exactly as before pagination.
public struct PersonExplanation: Sendable, Encodable {
    /// One archived event of the person.
    public struct TimelineEvent: Sendable, Encodable {
        public var source: String
        public var id: String
        public var type: String
        public var time: Instant
        public var recordedTime: Instant
        /// Whether it counts for this explanation: `time <= at` and `recordedTime <= knownAt`.
        public var known: Bool
        /// Whether a retraction by its publisher, visible at `at` as known at `knownAt`, withdrew it: it then
        /// counts for nothing.
        public var retracted: Bool
        /// The rules whose firing it supports.
        public var firingRules: [String]
    }

    /// A rule that fires at `at`: it fires throughout `[since, until)`.
    public struct FiringRule: Sendable, Encodable {
        public var rule: String
        public var colour: CodeStatus
        /// The earliest instant from which the rule fires without interruption up to `at`, found by
        /// evaluating at every event instant and every rule end before `at` (same `knownAt`).
        public var since: Instant
        /// When it stops firing on the known events; `null`: no end.
        public var until: Instant?
        /// The events (`source`, `id`) that make it fire.
        public var events: [EventReference]
        /// It fires from the page's earliest event on and earlier events exist: it started at `since` or
        /// before, which the earlier page tells. Present only then.
        public var firesEarlier: Bool

        enum CodingKeys: String, CodingKey { case rule, colour, since, until, events, firesEarlier }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(rule, forKey: .rule)
            try container.encode(colour, forKey: .colour)
            try container.encode(since, forKey: .since)
            try container.encode(until, forKey: .until)
            try container.encode(events, forKey: .events)
            if firesEarlier { try container.encode(true, forKey: .firesEarlier) }
        }
    }

    public var subject: String
    public var at: Instant
    public var knownAt: Instant
    public var code: PersonCode
    public var firingRules: [FiringRule]
    public var timeline: [TimelineEvent]
    /// The token that asks for the page before this one (`?page=`); absent on the earliest page.
    public var earlierPage: String?
}

/// Where an earlier page of an explanation starts: before the event at (`time`, `id`, `source`), and which
/// rules still fired there (their `since` continues on that page). Handed out as an opaque token.
public struct ExplanationPage: Sendable, Hashable {
    public var time: Instant
    public var id: String
    public var source: String
    /// The rules that fired from the later page's earliest event on.
    public var openRules: [String]

    public init(time: Instant, id: String, source: String, openRules: [String]) {
        self.time = time
        self.id = id
        self.source = source
        self.openRules = openRules
    }

    /// The token: base64url (no padding) of the fields, one per line (event ids, sources and rule names hold
    /// no line breaks).
    public var token: String {
        let text = (["\(time.microsecondsSinceEpoch)", source, id] + openRules).joined(separator: "\n")
        return Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Reads a token; `nil` for anything ``token`` did not make (bounded: at most 4096 characters).
    public init?(token: String) {
        guard token.utf8.count <= 4096, token.utf8.allSatisfy({ $0 < 128 }) else { return nil }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            return nil
        }
        let fields = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 3, let micros = Int64(fields[0]), !fields[1].isEmpty, !fields[2].isEmpty,
            fields.dropFirst(3).allSatisfy({ !$0.isEmpty })
        else { return nil }
        self.init(
            time: Instant(microsecondsSinceEpoch: micros),
            id: fields[2],
            source: fields[1],
            openRules: Array(fields.dropFirst(3))
        )
    }
}

/// Builds explanations from the archive and the person's fold.
public struct PersonExplanations: Sendable {
    private let queries: CodeQueries
    private let records: any PersonRecords

    public init(queries: CodeQueries, records: any PersonRecords) {
        self.queries = queries
        self.records = records
    }

    /// Events per page when the asker names no `limit`; and the most a page may hold.
    public static let defaultPageSize = 200
    public static let maximumPageSize = 1000

    /// The explanation of `subject`'s code at `at` as known at `knownAt` (default `at`): the first page, or
    /// the one `page` (an earlier page's token) names. Costs what the page holds plus the events that can
    /// matter at its instants (a rule's longest duration before them), not the whole history. Judged by the
    /// rules in force at `knownAt`, or by `ruleSet` when the asker names one (``CodeQueries/policy(named:)``;
    /// name it again for each earlier page).
    public func explain(
        _ subject: String,
        at: Instant,
        knownAt: Instant?,
        ruleSet: Policy? = nil,
        page: ExplanationPage? = nil,
        limit: Int = Self.defaultPageSize
    ) async throws -> PersonExplanation {
        let knownAt = knownAt ?? at
        let timeline = try await records.timeline(of: subject, at: at, before: page, limit: limit)
        // Judged by the rules in force at `knownAt` unless named (the decision names them).
        let policy = try await queries.policy(knownAt: knownAt, ruleSet: ruleSet)
        let replay = try await queries.replay(of: subject, from: at, policy: policy)
        let decision = replay.decision(at: at, knownAt: knownAt)
        let retracted = replay.retracted(at: at, knownAt: knownAt)
        // The rules whose start this page looks for: on the first page those firing at `at`, on an earlier
        // page those still firing at the later page's earliest event.
        let open = page.map { Set($0.openRules) } ?? Set(decision.reasons.map(\.rule))
        let end = page?.time ?? at
        let instants = Set(timeline.events.map(\.time).filter { $0 <= end })
        let start = instants.min() ?? end
        // Candidate instants where a rule can start firing: event times, and rule ends, on this page. The
        // rules firing at each come from rising evaluations, each on the events that can still matter then.
        // With no rule to trace (a green code, or no rule still firing on an earlier page) there is nothing
        // to evaluate.
        var firingAt: [Instant: Set<String>] = [:]
        if !open.isEmpty {
            let relevant = try await records.archivedEvents(
                of: subject,
                relevantFrom: policy.relevanceCutoff(at: start),
                through: end
            )
            var rising = try await queries.risingEvaluation(of: relevant, policy: policy)
            var ends = Set<Instant>()
            for instant in instants.sorted() {
                let reasons = rising.reasons(at: instant, knownAt: knownAt)
                firingAt[instant] = Set(reasons.map(\.rule))
                for reason in reasons {
                    if let until = reason.until, until >= start, until <= end { ends.insert(until) }
                }
            }
            rising = try await queries.risingEvaluation(of: relevant, policy: policy)
            for instant in ends.subtracting(firingAt.keys).sorted() {
                firingAt[instant] = Set(rising.reasons(at: instant, knownAt: knownAt).map(\.rule))
            }
        }
        let descending = firingAt.keys.sorted(by: >)
        var firing: [PersonExplanation.FiringRule] = []
        var stillOpen: [String] = []
        for reason in decision.reasons where open.contains(reason.rule) {
            var since = end
            for instant in descending where instant < since {
                guard firingAt[instant]?.contains(reason.rule) == true else { break }
                since = instant
            }
            let firesEarlier = timeline.earlier && since == start && firingAt[start]?.contains(reason.rule) == true
            if firesEarlier { stillOpen.append(reason.rule) }
            firing.append(
                PersonExplanation.FiringRule(
                    rule: reason.rule,
                    colour: reason.colour,
                    since: since,
                    until: reason.until,
                    events: reason.events,
                    firesEarlier: firesEarlier
                )
            )
        }
        let entries = timeline.events.map { event in
            let reference = EventReference(source: event.source, id: event.id)
            return PersonExplanation.TimelineEvent(
                source: event.source,
                id: event.id,
                type: event.type,
                time: event.time,
                recordedTime: event.recordedTime,
                known: event.time <= at && event.recordedTime <= knownAt,
                retracted: retracted.contains(reference),
                firingRules: decision.reasons.filter { $0.events.contains(reference) }.map(\.rule)
            )
        }
        let earliest = timeline.events.first { $0.time <= end }
        return PersonExplanation(
            subject: subject,
            at: at,
            knownAt: knownAt,
            code: PersonCode(subject: subject, decision: decision, evaluatedAt: at, knownAt: knownAt),
            firingRules: firing,
            timeline: entries,
            earlierPage: timeline.earlier
                ? earliest.map {
                    ExplanationPage(time: $0.time, id: $0.id, source: $0.source, openRules: stillOpen).token
                } : nil
        )
    }

    /// The person's status over `[from, to]` as known at `knownAt`, as spans of one status each: the code
    /// evaluated at `from`, at every instant in `instants` inside the window (event times: where a status can
    /// start), at every end of a rule found on the way (where one can stop), and at `samples` evenly spaced
    /// instants (designations start and end between events). Judged as ``explain(_:at:knownAt:ruleSet:page:limit:)``
    /// judges. A change between two evaluated instants that neither an event, a rule's end nor a sample shows
    /// is drawn from the next evaluated instant.
    public func statusHistory(
        _ subject: String,
        from: Instant,
        to: Instant,
        knownAt: Instant,
        ruleSet: Policy? = nil,
        instants: [Instant],
        samples: Int = 48
    ) async throws -> [StatusSpan] {
        guard from < to else { return [] }
        let policy = try await queries.policy(knownAt: knownAt, ruleSet: ruleSet)
        let replay = try await queries.replay(of: subject, from: from, policy: policy)
        let width = to.microsecondsSinceEpoch - from.microsecondsSinceEpoch
        var points = Set(instants.filter { $0 >= from && $0 <= to })
        points.insert(from)
        let count = max(1, samples)
        for step in 0..<count {
            points.insert(
                Instant(microsecondsSinceEpoch: from.microsecondsSinceEpoch + width / Int64(count) * Int64(step))
            )
        }
        var decided: [Instant: CodeStatus] = [:]
        // Twice: the ends of the rules firing at the first pass's instants are where the second pass looks too.
        for _ in 0..<2 {
            var ends = Set<Instant>()
            for instant in points where decided[instant] == nil {
                let decision = replay.decision(at: instant, knownAt: knownAt)
                decided[instant] = decision.status
                for reason in decision.reasons {
                    if let until = reason.until, until > from, until <= to { ends.insert(until) }
                }
                if let until = decision.validUntil, until > from, until <= to { ends.insert(until) }
            }
            points.formUnion(ends)
        }
        var spans: [StatusSpan] = []
        for instant in decided.keys.sorted() {
            let status = decided[instant] ?? .green
            if let last = spans.last, last.status == status { continue }
            if !spans.isEmpty { spans[spans.count - 1].until = instant }
            spans.append(StatusSpan(from: instant, until: to, status: status))
        }
        return spans
    }
}

/// A stretch of time over which a person's code kept one status.
public struct StatusSpan: Sendable, Hashable, Encodable {
    public var from: Instant
    public var until: Instant
    public var status: CodeStatus
}
