import HealthCodeCore
import Metrics

/// Evaluates people's codes inside a projector transaction, writes the materialised codes (each counted in
/// the code census under the person's last known area), announces the changed ones to query APIs
/// (``CodeChanges``) and appends every change of status or end instant to the decision log.
struct CodeEvaluator: Sendable {
    let policy: Policy

    init(policy: Policy) {
        self.policy = policy
    }

    /// Returns the number of codes that changed. The census counts move in `shard`'s rows.
    func evaluate(
        _ people: [String: StoredPerson],
        areas: RiskAreaMap,
        at instant: Instant,
        trigger: (String) -> EventReference?,
        shard: CounterShard,
        in transaction: any ProjectionTransaction
    ) async throws -> Int {
        var codes: [(subject: String, decision: CodeDecision, area: AreaCode?)] = []
        var changes: [DecisionRecord] = []
        var changed: [String] = []
        codes.reserveCapacity(people.count)
        for (subject, person) in people {
            let decision = policy.evaluate(person.state, areas: areas, at: instant)
            codes.append((subject, decision, person.state.lastKnownArea))
            let old = person.code
            // Any difference an answer shows (reasons too) makes the API drop its kept copy.
            if old != decision { changed.append(subject) }
            if old?.status != decision.status || old?.validUntil != decision.validUntil {
                changes.append(
                    DecisionRecord(
                        subject: subject,
                        decidedAt: instant,
                        oldStatus: old?.status,
                        decision: decision,
                        trigger: trigger(subject)
                    )
                )
            }
        }
        try await transaction.saveCodes(codes, evaluatedAt: instant, changed: changed, shard: shard)
        try await transaction.appendDecisions(changes)
        for change in changes where change.oldStatus != change.decision.status {
            Counter(label: "hc_projector_decisions_total", dimensions: [("status", change.decision.status.rawValue)])
                .increment()
        }
        return changes.count
    }
}
