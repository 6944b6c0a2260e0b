import HealthCodeCore

/// Where the gateway reads the registered publishers: table `publisher` in production
/// (`PublisherStore`), a fixed list in tests.
public protocol PublisherDirectory: Sendable {
    /// Every registered publisher, revoked ones included.
    func publishers() async throws -> [PublisherRecord]
}

/// What a retraction may refer to: the event archive in production (`PublisherStore`), a fixed
/// answer in tests.
public protocol RetractionTargets: Sendable {
    /// The sources of archived events of `subject` (a pseudonym, or an area code when `isArea`) whose
    /// id is `eventID`.
    func sources(ofEvent eventID: String, subject: String, isArea: Bool) async throws -> Set<String>
}

/// The review offices' officers, hourly override quotas and held overrides, shared by every gateway
/// instance: tables `review_officer`, `review_override_count`, `held_review` and `review_audit` in
/// production (`ReviewOfficeStore`).
public protocol ReviewOffices: Sendable {
    /// Decides each override of `office` in order against the quotas in the clock hour `window`
    /// (``OverrideQuota/admit(_:applied:)``), atomically across gateways: counts the applied ones,
    /// stores the held ones, and refuses those whose officer is not registered under `office`.
    func admit(
        _ overrides: [PendingOverride],
        office: String,
        window: Instant,
        quota: OverrideQuota
    ) async throws -> [OverrideAdmission]

    /// Approved overrides not yet appended to the log, oldest first.
    func unpublishedApprovals() async throws -> [HeldReview]

    /// Records that these approved overrides are in the log.
    func markPublished(_ ids: [Int64]) async throws

    /// How many overrides wait for a second officer.
    func heldCount() async throws -> Int

    /// Decisions on held overrides recorded after `decisionID` (all of them after 0), oldest first:
    /// their id, office, the officer who made the override and whether it was approved.
    func decisions(after decisionID: Int64) async throws -> [ReviewDecision]

    /// The id of the latest decision (0 if none).
    func latestDecisionID() async throws -> Int64

    /// Forgets quota counts of hours long past.
    func forgetOldCounts() async throws
}

/// A second officer's decision on a held override, as audited.
public struct ReviewDecision: Sendable, Hashable {
    public var id: Int64
    public var office: String
    /// The officer who made the override.
    public var officer: String
    public var approved: Bool

    public init(id: Int64, office: String, officer: String, approved: Bool) {
        self.id = id
        self.office = office
        self.officer = officer
        self.approved = approved
    }
}

/// The `jti` of every client assertion already used, shared by every gateway instance, until the
/// assertion expires: table `client_assertion_use` in production (`AssertionUseStore`).
public protocol AssertionUses: Sendable {
    /// Records that `issuer` used `jti`, remembered until `expiresAt`; `false` if it was used before.
    func recordFirstUse(issuer: String, jti: String, expiresAt: Instant) async throws -> Bool

    /// Forgets the uses of expired assertions.
    func forgetExpired() async throws
}

/// Everything the gateway reads and writes besides the event log, as one value.
public struct GatewayStores: Sendable {
    public var publishers: any PublisherDirectory
    public var retractionTargets: any RetractionTargets
    public var reviewOffices: any ReviewOffices
    public var assertionUses: any AssertionUses
    public var designations: any DesignationOversight
    public var heldDesignations: any HeldDesignations

    public init(
        publishers: any PublisherDirectory,
        retractionTargets: any RetractionTargets,
        reviewOffices: any ReviewOffices,
        assertionUses: any AssertionUses,
        designations: any DesignationOversight,
        heldDesignations: any HeldDesignations
    ) {
        self.publishers = publishers
        self.retractionTargets = retractionTargets
        self.reviewOffices = reviewOffices
        self.assertionUses = assertionUses
        self.designations = designations
        self.heldDesignations = heldDesignations
    }
}

/// Designations that would turn more than a configured number of people red, held for a second operator
/// (`healthcode approvals`): the impact is measured on the projection and the designation kept in `held_change`
/// in production (`HealthCodeBackbone.DesignationImpactOversight`).
public protocol DesignationOversight: Sendable {
    /// Holds `event` (a designation or its retraction, from `publisher`) when it would turn more than the
    /// threshold red, or when that cannot be ruled out within the oversight's time budget; the held change's
    /// id, or `nil` when it may be appended now.
    func hold(_ event: CloudEvent, from publisher: String) async throws -> Int64?
}

/// Held designations a second operator approved, to append to the log (`held_change` in production).
public protocol HeldDesignations: Sendable {
    /// Approved designations not yet appended to the log, oldest first: their held ids and events.
    func unpublishedApprovals() async throws -> [(id: Int64, event: [UInt8])]

    /// Records that these approved designations are in the log.
    func markPublished(_ ids: [Int64]) async throws
}
