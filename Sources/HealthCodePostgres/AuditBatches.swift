import Synchronization

/// One read to append to `analyst_audit`: by an analyst or a platform (exactly one).
public struct AuditRecord: Sendable, Hashable {
    public var analyst: String?
    public var platform: String?
    public var purpose: String
    public var subject: String
    public var endpoint: String

    public init(analyst: String?, platform: String?, purpose: String, subject: String, endpoint: String) {
        self.analyst = analyst
        self.platform = platform
        self.purpose = purpose
        self.subject = subject
        self.endpoint = endpoint
    }
}

/// Group commit for the audit trail: every read is recorded before it is served, so a read waits for
/// its row's commit; concurrent reads share one INSERT (and one commit) instead of one each. One batch
/// is written at a time: a read that finds none being written writes its own row and every row waiting
/// then (up to ``maximumBatch``), and hands the writing on to the first read still waiting, so no read
/// writes more than one batch.
public final class AuditBatches: Sendable {
    enum Turn: Sendable {
        case written
        case write
    }

    struct Waiting: Sendable {
        var record: AuditRecord
        var continuation: CheckedContinuation<Turn, any Error>
    }

    /// The state machine; the mutex is held only to move records and waiters.
    struct State: Sendable {
        var writing = false
        var waiting: [Waiting] = []

        /// Joins: `true` if the caller writes now, else it was queued.
        mutating func join(_ waiting: Waiting) -> Bool {
            guard writing else {
                writing = true
                return true
            }
            self.waiting.append(waiting)
            return false
        }

        /// The waiting rows a writer takes with its own.
        mutating func take(_ count: Int) -> [Waiting] {
            let taken = Array(waiting.prefix(count))
            waiting.removeFirst(taken.count)
            return taken
        }

        /// After a batch: the next writer (the first still waiting), or none and writing stops.
        mutating func handOver() -> Waiting? {
            guard !waiting.isEmpty else {
                writing = false
                return nil
            }
            return waiting.removeFirst()
        }
    }

    /// Most rows in one INSERT.
    public let maximumBatch: Int
    private let write: @Sendable ([AuditRecord]) async throws -> Void
    private let state = Mutex(State())

    /// - Parameters:
    ///   - maximumBatch: most rows in one write. Default 256.
    ///   - write: appends the rows in one statement (``AnalystStore/record(_:)`` in production).
    public init(maximumBatch: Int = 256, write: @escaping @Sendable ([AuditRecord]) async throws -> Void) {
        self.maximumBatch = max(maximumBatch, 1)
        self.write = write
    }

    /// Appends `record`; returns once it is committed, throws if it could not be (the read must then
    /// not be served).
    public func record(_ record: AuditRecord) async throws {
        let turn = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Turn, any Error>) in
            if state.withLock({ $0.join(Waiting(record: record, continuation: continuation)) }) {
                continuation.resume(returning: .write)
            }
        }
        guard turn == .write else { return }
        let others = state.withLock { $0.take(maximumBatch - 1) }
        let result: Result<Void, any Error>
        do {
            try await write([record] + others.map(\.record))
            result = .success(())
        } catch {
            result = .failure(error)
        }
        for waiting in others {
            switch result {
            case .success: waiting.continuation.resume(returning: .written)
            case .failure(let error): waiting.continuation.resume(throwing: error)
            }
        }
        state.withLock { $0.handOver() }?.continuation.resume(returning: .write)
        try result.get()
    }
}
