import HealthCodeAPI
import HealthCodeBackbone
import HealthCodeCore
import HealthCodePostgres
import Logging
import Synchronization

/// Everything the query API reads, kept in memory: materialised codes, folded states, archived events,
/// exports, analysts and their audit trail, area events. For in-process router tests: a test sets what
/// is stored, and can make every read fail (a database outage) or wait (a slow database).
public final class InMemoryQueryStores: MaterialisedCodeReads, PersonStates, PersonRecords, AnalystDirectory,
    ClientPlatformDirectory, AreaEventArchive, RuleSetActivations, Sendable
{
    struct Contents {
        var codes: [String: MaterialisedCode] = [:]
        var states: [String: PersonState] = [:]
        var events: [String: [ArchivedPersonEvent]] = [:]
        var analystsByKeyHash: [String: String] = [:]
        var platforms: [ClientPlatformRecord] = []
        var audit: [AuditRecord] = []
        var areaEvents: [(sequence: Int64, body: String)] = []
        var activations: [(activation: Int64, effectiveFrom: Instant, body: [UInt8])] = []
        var failure: (any Error & Sendable)?
        var delay: Duration?
    }

    private let contents = Mutex(Contents())

    public init() {}

    /// Stores `subject`'s materialised code.
    public func store(_ code: MaterialisedCode, of subject: String) { contents.withLock { $0.codes[subject] = code } }

    /// Stores `subject`'s folded state and archived events (the events folded in order).
    public func record(_ events: [CloudEvent], of subject: String, recordedTime: Instant) {
        var state = PersonState()
        for event in events { _ = state.apply(event) }
        let archived = events.map { event in
            var event = event
            event.recordedTime = recordedTime
            return ArchivedPersonEvent(event)
        }
        contents.withLock {
            $0.states[subject] = state
            $0.events[subject, default: []].append(contentsOf: archived)
        }
    }

    /// Records an activation of the rule set in `body`, effective from `effectiveFrom`.
    public func activate(_ body: [UInt8], effectiveFrom: Instant) {
        contents.withLock { $0.activations.append((Int64($0.activations.count + 1), effectiveFrom, body)) }
    }

    /// Registers an analyst by the SHA-256 of its key.
    public func addAnalyst(_ id: String, apiKeySHA256: String) {
        contents.withLock { $0.analystsByKeyHash[apiKeySHA256] = id }
    }

    /// Registers a client platform with a new key of `kind`; returns the key.
    @discardableResult
    public func addPlatform(
        _ id: String,
        kind: ClientPlatformRecord.Kind,
        rateLimit: RequestRateLimit? = nil
    ) -> String {
        let key = ClientPlatformRegistry.generateKey()
        let record = ClientPlatformRecord(
            id: id,
            kind: kind,
            apiKeySHA256: ClientPlatformRegistry.hash(key),
            rateLimit: rateLimit
        )
        contents.withLock { $0.platforms.append(record) }
        return key
    }

    /// Every read fails with `failure` from now on (`nil`: reads succeed again).
    public func fail(with failure: (any Error & Sendable)?) { contents.withLock { $0.failure = failure } }

    /// Every read waits `delay` first (`nil`: no wait).
    public func delay(by delay: Duration?) { contents.withLock { $0.delay = delay } }

    /// The audited reads, in order.
    public var audit: [AuditRecord] { contents.withLock { $0.audit } }

    private func read<Result: Sendable>(_ body: @Sendable (inout Contents) -> Result) async throws -> Result {
        let (failure, delay) = contents.withLock { ($0.failure, $0.delay) }
        if let delay { try await Task.sleep(for: delay) }
        if let failure { throw failure }
        return contents.withLock { body(&$0) }
    }

    public func materialisedCode(of subject: String) async throws -> MaterialisedCode? {
        try await read { $0.codes[subject] }
    }

    public func personState(of subject: String) async throws -> PersonState? {
        try await read { $0.states[subject] }
    }

    /// The person's events in archive order (`time`, `id`, `source`).
    private func archived(_ subject: String) async throws -> [ArchivedPersonEvent] {
        try await read { $0.events[subject] ?? [] }.sorted { ($0.time, $0.id, $0.source) < ($1.time, $1.id, $1.source) }
    }

    /// Every event through `end` (leaving none out for `cutoff` is a correct, slower answer).
    public func archivedEvents(
        of subject: String,
        relevantFrom cutoff: Instant,
        through end: Instant?
    ) async throws -> [ArchivedPersonEvent] {
        try await archived(subject).filter { event in end.map { event.time <= $0 } ?? true }
    }

    public func timeline(
        of subject: String,
        at: Instant,
        before page: ExplanationPage?,
        limit: Int
    ) async throws -> (events: [TimelineEntry], earlier: Bool) {
        let events = try await archived(subject).map {
            TimelineEntry(source: $0.source, id: $0.id, type: $0.type, time: $0.time, recordedTime: $0.recordedTime)
        }
        let candidates = events.filter { event in
            if let page { return (event.time, event.id, event.source) < (page.time, page.id, page.source) }
            return event.time <= at
        }
        var chosen = Array(candidates.suffix(limit))
        if page == nil { chosen += events.filter { $0.time > at }.prefix(limit - chosen.count) }
        return (chosen, candidates.count > limit)
    }

    /// No activation: the configured rule set decides.
    public func activations(
        after activation: Int64
    ) async throws
        -> [(activation: Int64, effectiveFrom: Instant, body: [UInt8])]
    {
        contents.withLock { $0.activations.filter { $0.activation > activation } }
    }

    public func subjectAccessExport(of subject: String) async throws -> [(table: String, rowsJSON: String)] {
        try await read { contents in
            let events = contents.events[subject] ?? []
            return [
                (
                    "event_archive",
                    "[" + events.map { String(decoding: $0.event.jsonBytes(), as: UTF8.self) }.joined(separator: ",")
                        + "]"
                )
            ]
        }
    }

    public func analystID(apiKeySHA256: String) async throws -> String? {
        try await read { $0.analystsByKeyHash[apiKeySHA256] }
    }

    public func recordRead(by reader: Reader, purpose: String, subject: String, endpoint: String) async throws {
        let entry = AuditRecord(reader: reader, purpose: purpose, subject: subject, endpoint: endpoint)
        try await read { $0.audit.append(entry) }
    }

    public func clientPlatforms() async throws -> [ClientPlatformRecord] {
        try await read { $0.platforms }
    }

    public func areaEvents(after sequence: Int64) async throws -> [(sequence: Int64, body: String)] {
        try await read { $0.areaEvents.filter { $0.sequence > sequence } }
    }
}

extension InMemoryQueryStores {
    /// The query API on these stores: every port is this object, judged by `ruleSet`, its signing key created
    /// in `configuration.signingKeysDirectory`.
    public func queryAPI(
        configuration: QueryAPIConfiguration,
        ruleSet: RuleSet,
        pseudonymizer: Pseudonymizer,
        logger: Logger
    ) async throws -> (api: QueryAPI, codeCache: CodeCache) {
        try await QueryAPIServer.assemble(
            configuration: configuration,
            stores: QueryAPIStores(
                codes: self,
                states: self,
                records: self,
                analysts: self,
                platforms: self,
                areaEvents: self,
                ruleSets: self
            ),
            ruleSet: ruleSet,
            pseudonymizer: pseudonymizer,
            createSigningKey: true,
            logger: logger
        )
    }
}
