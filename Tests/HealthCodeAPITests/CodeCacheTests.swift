import HealthCodeCore
import HealthCodePostgres
import Synchronization
import Testing

@testable import HealthCodeAPI

private func code(_ status: CodeStatus, at micros: Int64 = 0) -> MaterialisedCode {
    MaterialisedCode(
        decision: CodeDecision(
            status: status,
            validUntil: nil,
            reasons: [],
            ruleSetID: "reference",
            ruleSetVersion: "1",
            ruleSetHash: "hash"
        ),
        evaluatedAt: Instant(microsecondsSinceEpoch: micros)
    )
}

private let start = Instant(microsecondsSinceEpoch: 1_000_000_000)

private func later(_ seconds: Int64) -> Instant {
    Instant(microsecondsSinceEpoch: start.microsecondsSinceEpoch + seconds * 1_000_000)
}

private func token(_ lookup: CodeCacheState.Lookup) -> UInt64? {
    if case .miss(let token) = lookup { return token }
    return nil
}

private func hit(_ lookup: CodeCacheState.Lookup) -> MaterialisedCode?? {
    if case .hit(let code) = lookup { return .some(code) }
    return .none
}

struct CodeCacheStateTests {
    func listeningState(capacity: Int = 100, maximumAge: Duration = .seconds(30)) -> CodeCacheState {
        var state = CodeCacheState(capacity: capacity, maximumAge: maximumAge)
        state.listening = true
        return state
    }

    @Test func aReadCodeAnswersLaterLookupsUntilItExpires() throws {
        var state = listeningState()
        let first = try #require(token(state.lookup("p", now: start).0))
        state.store(code(.red), of: "p", token: first, now: start)
        #expect(hit(state.lookup("p", now: later(29)).0) == .some(code(.red)))
        #expect(token(state.lookup("p", now: later(30)).0) != nil)
        #expect(state.hits == 1)
        #expect(state.misses == 2)
    }

    @Test func keptAnswersOnlyWhatIsKeptAndFreshAndMarksNoRead() throws {
        var state = listeningState()
        #expect(state.kept("p", now: start).0 == nil, "nothing kept yet")
        #expect(state.misses == 0, "asking what is kept is not a miss")
        let first = try #require(token(state.lookup("p", now: start).0))
        state.store(code(.yellow), of: "p", token: first, now: start)
        #expect(state.kept("p", now: later(29)).0 == .some(code(.yellow)))
        #expect(state.kept("p", now: later(30)).0 == nil, "expired")
        #expect(state.hits == 1)
        // What `kept` found nothing for still reads through `lookup`, with a token.
        #expect(token(state.lookup("q", now: start).0) != nil)
        var deaf = CodeCacheState(capacity: 100, maximumAge: .seconds(30))
        #expect(deaf.kept("p", now: start).0 == nil, "nothing is answered from memory without a listener")
    }

    @Test func aPersonWithoutCodeIsKeptAsNone() throws {
        var state = listeningState()
        let first = try #require(token(state.lookup("nobody", now: start).0))
        state.store(nil, of: "nobody", token: first, now: start)
        #expect(hit(state.lookup("nobody", now: start).0) == .some(nil))
    }

    @Test func nothingIsKeptWhileNoListenerHearsChanges() {
        var state = CodeCacheState(capacity: 100, maximumAge: .seconds(30))
        #expect(hit(state.lookup("p", now: start).0) == nil)
        if case .miss(let token) = state.lookup("p", now: start).0 {
            #expect(token == nil)
        } else {
            Issue.record("a lookup without a listener must read")
        }
        #expect(state.count == 0)
    }

    @Test func aChangeAnnouncedDuringTheReadKeepsItsResultOut() throws {
        var state = listeningState()
        let reading = try #require(token(state.lookup("p", now: start).0))
        // The projector commits a new code after the read saw the old one; its announcement arrives
        // before the read returns.
        #expect(state.invalidate(["p"]) == 1)
        state.store(code(.green), of: "p", token: reading, now: start)
        #expect(hit(state.lookup("p", now: start).0) == nil)
    }

    @Test func anAnnouncedChangeDropsTheKeptCode() throws {
        var state = listeningState()
        let reading = try #require(token(state.lookup("p", now: start).0))
        state.store(code(.green), of: "p", token: reading, now: start)
        #expect(state.invalidate(["p", "q"]) == 1)
        #expect(hit(state.lookup("p", now: start).0) == nil)
    }

    @Test func onlyTheLatestReadOfAPersonMayKeepItsResult() throws {
        var state = listeningState()
        let older = try #require(token(state.lookup("p", now: start).0))
        let newer = try #require(token(state.lookup("p", now: start).0))
        state.store(code(.green), of: "p", token: older, now: start)
        #expect(hit(state.lookup("p", now: start).0) == nil)
        let newest = try #require(token(state.lookup("p", now: start).0))
        state.store(code(.yellow), of: "p", token: newer, now: start)
        state.store(code(.red), of: "p", token: newest, now: start)
        #expect(hit(state.lookup("p", now: start).0) == .some(code(.red)))
    }

    @Test func goingDeafDropsEverythingAndKeepsNothingUntilListeningAgain() throws {
        var state = listeningState()
        let reading = try #require(token(state.lookup("p", now: start).0))
        state.store(code(.green), of: "p", token: reading, now: start)
        let pending = try #require(token(state.lookup("q", now: start).0))
        state.listening = false
        let dropped = state.clear()
        #expect(dropped.reduce(0) { $0 + $1.count } == 2)
        state.store(code(.green), of: "q", token: pending, now: start)
        #expect(state.count == 0)
        state.listening = true
        #expect(hit(state.lookup("p", now: start).0) == nil)
    }

    @Test func theOldestGenerationIsDroppedWhenFullAndHitsSurviveIt() throws {
        var state = listeningState(capacity: 4)
        for subject in ["a", "b"] {
            let reading = try #require(token(state.lookup(subject, now: start).0))
            state.store(code(.green), of: subject, token: reading, now: start)
        }
        // "a" and "b" filled the recent half and moved to the older one ("b" while it was read).
        #expect(state.recent.isEmpty)
        #expect(state.older.count == 2)
        #expect(hit(state.lookup("b", now: start).0) == .some(code(.green)))
        // The hit brought "b" back; the next new person rotates again and drops "a".
        let c = try #require(token(state.lookup("c", now: start).0))
        #expect(state.older.keys.sorted() == ["b", "c"])
        state.store(code(.red), of: "c", token: c, now: start)
        #expect(hit(state.lookup("c", now: start).0) == .some(code(.red)))
        #expect(hit(state.lookup("a", now: start).0) == nil)
        #expect(state.count <= 4)
    }

    @Test func zeroCapacityKeepsNothing() {
        var state = listeningState(capacity: 0)
        #expect(token(state.lookup("p", now: start).0) == nil)
        #expect(state.count == 0)
    }
}

struct CodeCacheTests {
    @Test func lookupsReadOnceThenAnswerFromMemoryUntilAChangeIsAnnounced() async throws {
        let reads = Mutex(0)
        let stored = Mutex(code(.green))
        let cache = CodeCache(
            entries: 10,
            maximumAge: .seconds(30),
            reads: ReadsByClosure { _ in
                reads.withLock { $0 += 1 }
                return stored.withLock { $0 }
            }
        )
        cache.listening()
        #expect(try await cache.code(of: "p", now: start) == code(.green))
        #expect(try await cache.code(of: "p", now: start) == code(.green))
        #expect(reads.withLock { $0 } == 1)
        stored.withLock { $0 = code(.red) }
        cache.apply(CodeChanges.change(in: "q p"))
        #expect(try await cache.code(of: "p", now: start) == code(.red))
        #expect(reads.withLock { $0 } == 2)
        cache.apply(CodeChanges.change(in: CodeChanges.flushAll))
        #expect(try await cache.code(of: "p", now: start) == code(.red))
        #expect(reads.withLock { $0 } == 3)
        #expect(cache.statistics.hits == 1)
        #expect(cache.statistics.misses == 3)
    }

    @Test func aFailedReadKeepsNothing() async throws {
        struct ReadFailed: Error {}
        let fail = Mutex(true)
        let cache = CodeCache(
            entries: 10,
            maximumAge: .seconds(30),
            reads: ReadsByClosure { _ in
                if fail.withLock({ $0 }) { throw ReadFailed() }
                return code(.yellow)
            }
        )
        cache.listening()
        await #expect(throws: ReadFailed.self) { try await cache.code(of: "p", now: start) }
        fail.withLock { $0 = false }
        #expect(try await cache.code(of: "p", now: start) == code(.yellow))
    }
}

struct CodeChangesTests {
    @Test func payloadsStayUnderPostgresLimitAndRoundTrip() {
        let subjects = (0..<1000).map { String(repeating: "\($0 % 10)", count: 32) + "\($0)" }
        let payloads = CodeChanges.payloads(subjects)
        #expect(payloads.count > 1)
        #expect(payloads.allSatisfy { $0.utf8.count <= CodeChanges.maximumPayloadBytes })
        let back = payloads.flatMap { payload -> [String] in
            guard case .subjects(let subjects) = CodeChanges.change(in: payload) else { return [] }
            return subjects.map(String.init)
        }
        #expect(back == subjects)
        #expect(CodeChanges.payloads([]).isEmpty)
        #expect(CodeChanges.change(in: "*") == .everything)
    }
}

/// Materialised codes answered by a closure.
struct ReadsByClosure: MaterialisedCodeReads {
    let read: @Sendable (String) async throws -> MaterialisedCode?

    init(_ read: @escaping @Sendable (String) async throws -> MaterialisedCode?) { self.read = read }

    func materialisedCode(of subject: String) async throws -> MaterialisedCode? { try await read(subject) }
}
