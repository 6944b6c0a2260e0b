import HealthCodeCore
import HealthCodeGateway
import Synchronization

/// A ``PublisherDirectory`` that answers what `records` returns, for gateway tests without PostgreSQL.
public struct InMemoryPublisherDirectory: PublisherDirectory {
    private let records: @Sendable () throws -> [PublisherRecord]

    public init(_ records: @escaping @Sendable () throws -> [PublisherRecord]) { self.records = records }

    public func publishers() async throws -> [PublisherRecord] { try records() }
}

/// ``RetractionTargets`` answered by `lookup` (no archive: every retraction allowed), for gateway tests.
public struct InMemoryRetractionTargets: RetractionTargets {
    /// The sources of archived events with an id and a subject (the last argument: an area code).
    public typealias Lookup = @Sendable (String, String, Bool) async throws -> Set<String>
    private let lookup: Lookup

    public init(_ lookup: @escaping Lookup = { _, _, _ in [] }) { self.lookup = lookup }

    public func sources(ofEvent eventID: String, subject: String, isArea: Bool) async throws -> Set<String> {
        try await lookup(eventID, subject, isArea)
    }
}

/// ``ReviewOffices`` in memory: registered officers by office, the quota counts per office and hour, and
/// the held overrides, for gateway tests without PostgreSQL.
public final class InMemoryReviewOffices: ReviewOffices {
    struct State {
        var officers: [String: Set<String>]
        var counts: [String: OverrideCounts] = [:]
        var held: [HeldReview] = []
    }

    private let state: Mutex<State>

    /// - Parameter officers: the registered officers, by office (publisher id).
    public init(officers: [String: Set<String>] = [:]) { state = Mutex(State(officers: officers)) }

    /// The held overrides so far.
    public var held: [HeldReview] { state.withLock { $0.held } }

    public func admit(
        _ overrides: [PendingOverride],
        office: String,
        window: Instant,
        quota: OverrideQuota
    ) async throws -> [OverrideAdmission] {
        state.withLock { state in
            let key = "\(office) \(window.microsecondsSinceEpoch)"
            let registered = state.officers[office] ?? []
            var admissions = [OverrideAdmission?](repeating: nil, count: overrides.count)
            var quotaIndices: [Int] = []
            for (index, override) in overrides.enumerated() {
                if !registered.contains(override.officer) {
                    admissions[index] = .unregisteredOfficer
                } else if let held = state.held.first(where: { $0.office == office && $0.eventID == override.eventID })
                {
                    admissions[index] = .held(id: held.id)
                } else {
                    quotaIndices.append(index)
                }
            }
            let (applies, after) = quota.admit(
                quotaIndices.map { overrides[$0].officer },
                applied: state.counts[key] ?? OverrideCounts()
            )
            state.counts[key] = after
            for (index, fits) in zip(quotaIndices, applies) {
                if fits {
                    admissions[index] = .applied
                    continue
                }
                let override = overrides[index]
                let id = Int64(state.held.count + 1)
                state.held.append(
                    HeldReview(
                        id: id,
                        office: office,
                        officer: override.officer,
                        eventID: override.eventID,
                        subject: override.subject,
                        status: .held,
                        heldAt: window,
                        event: override.event
                    )
                )
                admissions[index] = .held(id: id)
            }
            return admissions.map { $0! }
        }
    }

    public func unpublishedApprovals() async throws -> [HeldReview] {
        state.withLock { $0.held.filter { $0.status == .approved && $0.publishedAt == nil } }
    }

    public func markPublished(_ ids: [Int64]) async throws {
        state.withLock { state in
            for index in state.held.indices where ids.contains(state.held[index].id) {
                state.held[index].publishedAt = state.held[index].decidedAt
            }
        }
    }

    public func heldCount() async throws -> Int { state.withLock { $0.held.count { $0.status == .held } } }

    public func decisions(after decisionID: Int64) async throws -> [ReviewDecision] { [] }

    public func latestDecisionID() async throws -> Int64 { 0 }

    public func forgetOldCounts() async throws {}
}

/// ``AssertionUses`` in memory, for gateway tests without PostgreSQL.
public final class InMemoryAssertionUses: AssertionUses {
    private let used = Mutex<Set<String>>([])

    public init() {}

    public func recordFirstUse(issuer: String, jti: String, expiresAt: Instant) async throws -> Bool {
        used.withLock { $0.insert(issuer + " " + jti).inserted }
    }

    public func forgetExpired() async throws {}
}

extension GatewayStores {
    /// Stores for gateway tests: `publishers`, every retraction allowed, no officer registered unless
    /// `reviewOffices` says otherwise, assertion uses remembered in memory.
    public static func inMemory(
        publishers: @escaping @Sendable () throws -> [PublisherRecord],
        retractionTargets: any RetractionTargets = InMemoryRetractionTargets(),
        reviewOffices: any ReviewOffices = InMemoryReviewOffices(),
        designations: InMemoryDesignations = InMemoryDesignations()
    ) -> GatewayStores {
        GatewayStores(
            publishers: InMemoryPublisherDirectory(publishers),
            retractionTargets: retractionTargets,
            reviewOffices: reviewOffices,
            assertionUses: InMemoryAssertionUses(),
            designations: designations,
            heldDesignations: designations
        )
    }
}

/// Designation oversight in memory: holds the designations whose area `holding` names (none by default), and
/// hands approved ones to the release; or fails every measurement when `failing`.
public final class InMemoryDesignations: DesignationOversight, HeldDesignations, Sendable {
    struct State {
        var held: [(id: Int64, event: [UInt8], approved: Bool, published: Bool)] = []
    }

    private let holding: Set<String>
    private let failing: Bool
    private let state = Mutex(State())

    public init(holding: Set<String> = [], failing: Bool = false) {
        self.holding = holding
        self.failing = failing
    }

    public func hold(_ event: CloudEvent, from publisher: String) async throws -> Int64? {
        if failing { throw RedactedError("postgres server: sqlstate 57P01") }
        guard holding.contains(event.subject) else { return nil }
        return state.withLock { state in
            let id = Int64(state.held.count + 1)
            state.held.append((id, event.jsonBytes(), false, false))
            return id
        }
    }

    /// Approves held designation `id`.
    public func approve(_ id: Int64) {
        state.withLock { state in
            for index in state.held.indices where state.held[index].id == id { state.held[index].approved = true }
        }
    }

    /// Ids of the held designations appended to the log.
    public var published: [Int64] { state.withLock { $0.held.filter(\.published).map(\.id) } }

    public func unpublishedApprovals() async throws -> [(id: Int64, event: [UInt8])] {
        state.withLock { $0.held.filter { $0.approved && !$0.published }.map { ($0.id, $0.event) } }
    }

    public func markPublished(_ ids: [Int64]) async throws {
        state.withLock { state in
            for index in state.held.indices where ids.contains(state.held[index].id) {
                state.held[index].published = true
            }
        }
    }
}

extension InMemoryReviewOffices {
    /// Approves held override `id` as `officer` (no checks: the rule is tested on ``HeldReview``).
    public func approve(_ id: Int64, by officer: String, at instant: Instant) {
        state.withLock { state in
            for index in state.held.indices where state.held[index].id == id {
                state.held[index].status = .approved
                state.held[index].decidedBy = officer
                state.held[index].decidedAt = instant
            }
        }
    }
}
