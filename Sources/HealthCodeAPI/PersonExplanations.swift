import Foundation
import HealthCodeCore

/// Why a person has a code at an instant, as known at an instant: the timeline of the person's
/// archived events (which ones were known), every firing rule with the interval it fires in and
/// the events behind it, and the rule set (id, version, content hash) that decided.
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

        enum CodingKeys: String, CodingKey { case rule, colour, since, until, events }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(rule, forKey: .rule)
            try container.encode(colour, forKey: .colour)
            try container.encode(since, forKey: .since)
            try container.encode(until, forKey: .until)
            try container.encode(events, forKey: .events)
        }
    }

    public var subject: String
    public var at: Instant
    public var knownAt: Instant
    public var code: PersonCode
    public var firingRules: [FiringRule]
    public var timeline: [TimelineEvent]
}

/// Builds explanations from the archive and the person's fold.
public struct PersonExplanations: Sendable {
    private let queries: CodeQueries
    private let records: any PersonRecords

    public init(queries: CodeQueries, records: any PersonRecords) {
        self.queries = queries
        self.records = records
    }

    /// The explanation of `subject`'s code at `at` as known at `knownAt` (default `at`).
    public func explain(_ subject: String, at: Instant, knownAt: Instant?) async throws -> PersonExplanation {
        let knownAt = knownAt ?? at
        let events = try await records.archivedEvents(of: subject)
        let evaluation = try await queries.evaluator(for: subject, from: min(events.first?.time ?? at, at))
        let decision = evaluation(at, knownAt)
        // Candidate instants where a rule can start firing: event times, and rule ends before `at`. The rules
        // firing at each come from rising evaluations, each on the events that can still matter then.
        var rising = try await queries.risingEvaluation(of: events)
        var firingAt: [Instant: Set<String>] = [:]
        var ends = Set<Instant>()
        for instant in Set(events.map(\.time).filter { $0 <= at }).sorted() {
            let reasons = rising.reasons(at: instant, knownAt: knownAt)
            firingAt[instant] = Set(reasons.map(\.rule))
            for reason in reasons {
                if let until = reason.until, until <= at { ends.insert(until) }
            }
        }
        rising = try await queries.risingEvaluation(of: events)
        for instant in ends.subtracting(firingAt.keys).sorted() {
            firingAt[instant] = Set(rising.reasons(at: instant, knownAt: knownAt).map(\.rule))
        }
        let descending = firingAt.keys.sorted(by: >)
        var firing: [PersonExplanation.FiringRule] = []
        for reason in decision.reasons {
            var since = at
            for instant in descending where instant < since {
                guard firingAt[instant]?.contains(reason.rule) == true else { break }
                since = instant
            }
            firing.append(
                PersonExplanation.FiringRule(
                    rule: reason.rule,
                    colour: reason.colour,
                    since: since,
                    until: reason.until,
                    events: reason.events
                )
            )
        }
        let timeline = events.map { event in
            let reference = EventReference(source: event.source, id: event.id)
            return PersonExplanation.TimelineEvent(
                source: event.source,
                id: event.id,
                type: event.type,
                time: event.time,
                recordedTime: event.recordedTime,
                known: event.time <= at && event.recordedTime <= knownAt,
                firingRules: decision.reasons.filter { $0.events.contains(reference) }.map(\.rule)
            )
        }
        return PersonExplanation(
            subject: subject,
            at: at,
            knownAt: knownAt,
            code: PersonCode(subject: subject, decision: decision, evaluatedAt: at, knownAt: knownAt),
            firingRules: firing,
            timeline: timeline
        )
    }
}
