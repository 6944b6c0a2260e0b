/// Which rule set decides at which instant (docs/POLICY.md §4; PostgreSQL's `rule_set_activation`): each
/// activation makes its rule set decide from its `effectiveFrom` on, until a later-effective one; on equal
/// instants the later activation wins. Policies are built once per rule set.
public struct RuleSetTimeline: Sendable {
    /// One activation: from `effectiveFrom` on, `ruleSet` decides.
    public struct Activation: Sendable {
        public var order: Int64
        public var effectiveFrom: Instant
        public var ruleSet: RuleSet

        public init(order: Int64, effectiveFrom: Instant, ruleSet: RuleSet) {
            self.order = order
            self.effectiveFrom = effectiveFrom
            self.ruleSet = ruleSet
        }
    }

    /// The activations by `effectiveFrom`, then `order`, each with its rule set's policy.
    private let entries: [(effectiveFrom: Instant, order: Int64, policy: Policy)]

    public init(_ activations: [Activation]) {
        var policies: [String: Policy] = [:]
        entries = activations.sorted { ($0.effectiveFrom, $0.order) < ($1.effectiveFrom, $1.order) }.map { activation in
            let hash = activation.ruleSet.contentHash
            let policy = policies[hash] ?? Policy(ruleSet: activation.ruleSet)
            policies[hash] = policy
            return (activation.effectiveFrom, activation.order, policy)
        }
    }

    /// The policy of the rule set in force at `instant`; `nil` before the first activation.
    public func policy(at instant: Instant) -> Policy? {
        // The last entry effective at or before `instant`: a binary search over the sorted entries.
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].effectiveFrom <= instant { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : entries[low - 1].policy
    }

    /// The policy of an activated rule set named by `name`: its content hash (`sha256:…`, as decisions name
    /// it) or `ID@VERSION`. `nil` when no activated rule set has that name.
    /// - Throws: ``RuleSetNameError`` when `ID@VERSION` names activated rule sets of different contents.
    public func policy(named name: String) throws(RuleSetNameError) -> Policy? {
        var found: [String: Policy] = [:]
        for entry in entries {
            let ruleSet = entry.policy.ruleSet
            if ruleSet.contentHash == name || "\(ruleSet.id)@\(ruleSet.version)" == name {
                found[ruleSet.contentHash] = entry.policy
            }
        }
        guard found.count <= 1 else { throw RuleSetNameError(name: name, hashes: found.keys.sorted()) }
        return found.values.first
    }
}

/// A rule-set name (`ID@VERSION`) that fits activated rule sets of different contents: name one by its hash.
public struct RuleSetNameError: Error, CustomStringConvertible, Sendable {
    /// The ambiguous name.
    public var name: String
    /// The hashes it fits.
    public var hashes: [String]

    public var description: String {
        "rule set \(name) names \(hashes.count) activated rule sets of different contents "
            + "(\(hashes.joined(separator: ", "))): name one by its hash"
    }
}
