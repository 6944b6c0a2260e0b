import HealthCodeCore
import Logging

/// Re-applies dead letters after the cause was fixed (a contract upcast, a corrected rule set, a
/// repaired publisher): each one that decodes now is archived, folded and evaluated exactly as a
/// batch would have done (a letter whose event was archived meanwhile changes nothing), and is
/// marked replayed in the same transaction. Letters that still fail stay, with their reason.
public struct DeadLetterReplay: Sendable {
    /// What happened to one letter.
    public struct Outcome: Sendable {
        public var id: Int64
        /// `nil` when it was applied; else why it still fails.
        public var failure: String?
    }

    private let store: any ProjectionStorage
    private let projection: Projection

    public init(store: any ProjectionStorage, projection: Projection) {
        self.store = store
        self.projection = projection
    }

    /// Replays the unreplayed letters (only `ids` when given), oldest first.
    public func replay(ids: Set<Int64>? = nil, limit: Int = 10_000) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for stored in try await store.deadLetters(includeReplayed: false, limit: limit)
        where ids?.contains(stored.id) ?? true {
            let message = ConsumedMessage(
                offset: stored.letter.offset,
                key: stored.letter.key,
                value: stored.letter.value
            )
            let decoded = projection.decode([message], topic: stored.letter.topic, partition: stored.letter.partition)
            if let failure = decoded.deadLetters.first {
                outcomes.append(Outcome(id: stored.id, failure: failure.reason))
                continue
            }
            try await store.withProjectionTransaction { transaction in
                _ = try await projection.project(decoded, shard: .shared, in: transaction)
                try await transaction.markReplayed(stored.id)
            }
            outcomes.append(Outcome(id: stored.id, failure: nil))
        }
        return outcomes
    }
}
