import HealthCodeConsole
import HealthCodeCore
import Synchronization

/// The console's operations in memory: dashboard facts, held changes and evidence set by the test; decisions
/// refused as PostgreSQL's store refuses them (unknown, decided, same operator).
public final class InMemoryConsoleOperations: ConsoleOperations {
    struct Contents {
        var approvers: Set<String> = []
        var facts = DashboardFacts(
            codesByArea: [],
            codesOverTime: [],
            feeds: [],
            projectors: [],
            deadLetters: DeadLetterFacts(waiting: 0, latest: []),
            heldOverrides: []
        )
        var proposals: [Int64: Proposal] = [:]
        var evidenceRequests: [(subject: String, context: [(name: String, value: String)])] = []
    }

    private let contents = Mutex(Contents())

    public init() {}

    public func allowApprovals(by analyst: String) { contents.withLock { _ = $0.approvers.insert(analyst) } }
    public func setDashboard(_ facts: DashboardFacts) { contents.withLock { $0.facts = facts } }
    public func hold(_ proposal: Proposal) { contents.withLock { $0.proposals[proposal.id] = proposal } }
    public var evidenceSubjects: [String] { contents.withLock { $0.evidenceRequests.map(\.subject) } }

    public func mayApprove(analyst: String) async throws -> Bool {
        contents.withLock { $0.approvers.contains(analyst) }
    }

    public func dashboard(since: Instant) async throws -> DashboardFacts { contents.withLock { $0.facts } }

    public func proposals() async throws -> [Proposal] {
        contents.withLock { Array($0.proposals.values) }.sorted { $0.id < $1.id }
    }

    public func proposal(_ id: Int64) async throws -> Proposal? { contents.withLock { $0.proposals[id] } }

    public func decide(_ id: Int64, approve: Bool, by analyst: String) async throws -> Proposal {
        try contents.withLock { contents in
            guard var proposal = contents.proposals[id] else {
                throw ProposalRefusal(code: "unknown", detail: "no held change #\(id)")
            }
            guard proposal.status == .held else {
                throw ProposalRefusal(code: "decided", detail: "held change #\(id) is already decided")
            }
            guard proposal.requestedBy != analyst else {
                throw ProposalRefusal(
                    code: "same-operator",
                    detail: "held change #\(id) must be decided by another operator than the one who asked for it"
                )
            }
            proposal.status = approve ? .approved : .rejected
            proposal.decidedBy = analyst
            proposal.decidedAt = Instant.now()
            contents.proposals[id] = proposal
            return proposal
        }
    }

    public func evidence(
        of subject: String,
        at: Instant,
        knownAt: Instant,
        ruleSet: String?,
        context: [(name: String, value: String)]
    ) async throws -> [UInt8] {
        contents.withLock { $0.evidenceRequests.append((subject, context)) }
        return Array(#"{"evidence":"\#(subject)"}"#.utf8)
    }
}
