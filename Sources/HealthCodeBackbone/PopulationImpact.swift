import HealthCodeCore
import HealthCodePostgres
import Logging
import PostgresNIO
import Synchronization

/// Evaluates every person under the current and a proposed policy (``PolicyComparison``) and reports the
/// transitions (``ImpactReport``): `healthcode impact`, and the check that holds a change turning many people
/// red. The population is split into pseudonym ranges read and evaluated `workers` at a time (one per core by
/// default); a state pruned for other rules than one of the two is folded anew from the archive first, so
/// that the report is what the whole histories give.
public struct PopulationImpact: Sendable {
    /// Ranges per worker: a few more than workers, so that one slow range does not leave the others idle.
    static let rangesPerWorker = 4

    let scan: PersonStateScan
    private let logger: Logger
    /// States folded anew from the archive per read.
    let replayBatch = 500

    public init(postgres: PostgresClient, logger: Logger) {
        self.scan = PersonStateScan(client: postgres, logger: logger)
        self.logger = logger
    }

    /// How many people there are to evaluate (for a progress bar's total).
    public func people() async throws -> Int { try await scan.people() }

    /// The report of `comparison` over every person; `progress` is called with the number of people
    /// evaluated since its last call (from several tasks at once), every few thousand people.
    public func report(
        _ comparison: PolicyComparison,
        workers: Int,
        samplesPerLine: Int = 5,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> ImpactReport {
        let workers = max(1, workers)
        let bounds = try await scan.bounds(parts: workers * Self.rangesPerWorker, people: try await scan.people())
        let lower = [""] + bounds
        let upper: [String?] = bounds + [nil]
        let ranges = Array(zip(lower, upper))
        return try await withThrowingTaskGroup(of: ImpactReport.self) { group in
            var next = 0
            var total = ImpactReport(samplesPerLine: samplesPerLine)
            for _ in 0..<workers where next < ranges.count {
                let range = ranges[next]
                next += 1
                group.addTask {
                    try await report(comparison, from: range.0, below: range.1, samples: samplesPerLine, progress)
                }
            }
            for try await part in group {
                total.merge(part)
                if next < ranges.count {
                    let range = ranges[next]
                    next += 1
                    group.addTask {
                        try await report(comparison, from: range.0, below: range.1, samples: samplesPerLine, progress)
                    }
                }
            }
            return total
        }
    }

    private func report(
        _ comparison: PolicyComparison,
        from lowerBound: String,
        below upperBound: String?,
        samples: Int,
        _ progress: @Sendable (Int) -> Void
    ) async throws -> ImpactReport {
        var report = ImpactReport(samplesPerLine: samples)
        var stale: [String] = []
        var pending = 0
        try await scan.states(from: lowerBound, below: upperBound) { subject, state in
            if comparison.answers(state) {
                comparison.compare(state, of: subject, into: &report)
            } else {
                stale.append(subject)
            }
            pending += 1
            if pending == 4096 {
                progress(pending)
                pending = 0
            }
        }
        progress(pending)
        for start in stride(from: 0, to: stale.count, by: replayBatch) {
            let subjects = Array(stale[start..<min(start + replayBatch, stale.count)])
            for (subject, state) in try await foldedAnew(subjects, for: comparison) {
                comparison.compare(state, of: subject, into: &report)
            }
        }
        return report
    }

    /// States pruned for other fact lifetimes than the comparison's: the archive's relevant events, folded anew.
    func foldedAnew(_ subjects: [String], for comparison: PolicyComparison) async throws -> [(String, PersonState)] {
        let events = try await scan.relevantEvents(of: subjects, from: comparison.relevanceCutoff)
        return subjects.map { subject in
            var state = PersonState()
            for event in events[subject, default: []] { state.apply(event) }
            return (subject, state)
        }
    }
}

/// A change an operator proposes, whose impact is measured before it applies.
public enum ProposedChange: Sendable {
    /// A rule set's file, to take effect from an instant.
    case ruleSet(file: [UInt8], effectiveFrom: Instant)
    /// A designation or its retraction (an area event).
    case designation(CloudEvent)

    /// When the change is compared: when it takes effect, or now if that has passed.
    public func comparedAt(now: Instant) -> Instant {
        switch self {
        case .ruleSet(_, let effectiveFrom): return max(now, effectiveFrom)
        case .designation(let event):
            if case .riskArea(let designation) = event.payload { return max(now, designation.effectiveFrom) }
            return now
        }
    }
}

/// What became of a proposed rule set: activated, or held for a second operator.
public enum RuleSetProposal: Sendable {
    case activated(RuleSetActivation, ImpactReport)
    case held(id: Int64, ImpactReport)
}

extension Backbone {
    /// The comparison of `change` with the state of things now: the rule set in force at the instant compared
    /// (`configured` before the first activation) and the designations archived so far.
    public static func comparison(
        of change: ProposedChange,
        at instant: Instant,
        postgres: PostgresClient,
        configured: RuleSet,
        logger: Logger
    ) async throws -> PolicyComparison {
        let rules = RuleSetCatalog(
            source: RuleSetVersionStore(client: postgres, logger: logger),
            configured: Policy(ruleSet: configured),
            logger: logger
        )
        let current = try await rules.policy(at: instant, maximumAge: .zero)
        let areas = try await RiskAreaCatalog(
            archive: ProjectionStore(client: postgres, logger: logger),
            logger: logger
        )
        .refresh()
        switch change {
        case .ruleSet(let file, _):
            return PolicyComparison(
                current: current,
                proposed: Policy(ruleSet: try RuleSet.decode(file)),
                areas: areas,
                at: instant
            )
        case .designation(let event):
            guard !event.isPersonEvent else {
                throw ProposedChangeError(
                    code: "not-a-designation",
                    detail: "the event must be a risk-area designation or the retraction of one (subject: an area code)"
                )
            }
            return PolicyComparison(policy: current, areas: areas, adding: event, at: instant)
        }
    }

    /// Activates a rule set unless it would turn more than `threshold` people red: then it is held for a
    /// second operator (`healthcode approvals`) with its impact report.
    public static func proposeRuleSet(
        file: [UInt8],
        effectiveFrom: Instant,
        by requester: String,
        threshold: Int,
        workers: Int,
        postgres: PostgresClient,
        configured: RuleSet,
        progress: @escaping @Sendable (Int) -> Void = { _ in },
        logger: Logger
    ) async throws -> RuleSetProposal {
        let change = ProposedChange.ruleSet(file: file, effectiveFrom: effectiveFrom)
        let comparison = try await comparison(
            of: change,
            at: change.comparedAt(now: Instant.now()),
            postgres: postgres,
            configured: configured,
            logger: logger
        )
        let report = try await PopulationImpact(postgres: postgres, logger: logger)
            .report(comparison, workers: workers, progress: progress)
        if report.turningRed > threshold {
            let id = try await HeldChangeStore(client: postgres, logger: logger).hold(
                .ruleSet,
                body: file,
                effectiveFrom: effectiveFrom,
                impact: report,
                threshold: threshold,
                requestedBy: requester
            )
            return .held(id: id, report)
        }
        let activation = try await RuleSetVersionStore(client: postgres, logger: logger)
            .activate(body: file, effectiveFrom: effectiveFrom, activatedBy: requester)
        return .activated(activation, report)
    }
}

/// Why a proposed change cannot be measured: `code` for scripts, `detail` for people.
public struct ProposedChangeError: Error, CustomStringConvertible {
    public var code: String
    public var detail: String
    public var description: String { "\(code): \(detail)" }
}
