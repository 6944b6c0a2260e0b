import Logging
import Synchronization

/// Where rule-set activations are read, in the order they were recorded: `rule_set_activation` with each
/// rule set's file in production (the PostgreSQL adapter's store, or one of its transactions).
public protocol RuleSetActivations: Sendable {
    /// Activations recorded after `activation` (an activation id), in order, each with its rule set's file.
    func activations(
        after activation: Int64
    ) async throws
        -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]
}

/// The rule sets in force over time (``RuleSetTimeline``), refreshed incrementally from
/// ``RuleSetActivations``, so that projectors and APIs follow an activation without a restart. Before the
/// first activation the process's configured rule set decides (a database that never had one activated).
public final class RuleSetCatalog: Sendable {
    private struct State {
        var activations: [RuleSetTimeline.Activation] = []
        var timeline = RuleSetTimeline([])
        var lastActivation: Int64 = 0
        var lastRefresh: ContinuousClock.Instant?
    }

    private let source: any RuleSetActivations
    private let configured: Policy
    private let logger: Logger
    private let state = Mutex(State())

    public init(source: any RuleSetActivations, configured: Policy, logger: Logger) {
        self.source = source
        self.configured = configured
        self.logger = logger
    }

    /// The policy in force at `instant` as last refreshed: the latest activation effective by then, else the
    /// configured rule set.
    public func policy(at instant: Instant) -> Policy {
        state.withLock { $0.timeline.policy(at: instant) } ?? configured
    }

    /// Re-reads activations first if the last refresh is older than `maximumAge`.
    public func policy(at instant: Instant, maximumAge: Duration) async throws -> Policy {
        let now = ContinuousClock.now
        let stale = state.withLock { state in
            guard let last = state.lastRefresh, last.duration(to: now) < maximumAge else { return true }
            return false
        }
        if stale { try await refresh(from: source) }
        return policy(at: instant)
    }

    /// The policy of an activated rule set named by its hash or `ID@VERSION` (``RuleSetTimeline/policy(named:)``),
    /// or the configured one if so named (it decided before the first activation); re-reads activations first
    /// when none is found. `nil`: no such rule set.
    public func policy(named name: String) async throws -> Policy? {
        if let found = try known(named: name) { return found }
        try await refresh(from: source)
        return try known(named: name)
    }

    private func known(named name: String) throws -> Policy? {
        if let activated = try state.withLock({ state throws(RuleSetNameError) in
            try state.timeline.policy(named: name)
        }) {
            return activated
        }
        let ruleSet = configured.ruleSet
        return ruleSet.contentHash == name || "\(ruleSet.id)@\(ruleSet.version)" == name ? configured : nil
    }

    /// Reads the activations recorded since the last refresh from `source` (a transaction reads on its own
    /// connection). A file that no longer decodes is logged and left out, never guessed at.
    public func refresh(from source: any RuleSetActivations) async throws {
        let started = ContinuousClock.now
        let after = state.withLock { $0.lastActivation }
        let rows = try await source.activations(after: after)
        var decoded: [RuleSetTimeline.Activation] = []
        for row in rows {
            do {
                decoded.append(
                    .init(
                        order: row.activation,
                        effectiveFrom: row.effectiveFrom,
                        ruleSet: try RuleSet.decode(row.body)
                    )
                )
            } catch {
                logger.error(
                    "an activated rule set no longer decodes; it is left out",
                    metadata: ["activation": "\(row.activation)", "error": "\(error)"]
                )
            }
        }
        state.withLock { state in
            state.lastRefresh = started
            let new = decoded.filter { $0.order > state.lastActivation }
            guard !new.isEmpty || rows.contains(where: { $0.activation > state.lastActivation }) else { return }
            state.activations += new
            state.lastActivation = max(state.lastActivation, rows.map(\.activation).max() ?? 0)
            state.timeline = RuleSetTimeline(state.activations)
        }
    }
}
