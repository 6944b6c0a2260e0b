import HealthCodeCore
import NIOCore
import NIOPosix
import Testing

@testable import HealthCodePostgres

struct EventLoopCodeReadsTests {
    /// Reads whose every answer names the shard (event loop) that read it.
    private func reads(on loops: [any EventLoop]) -> EventLoopCodeReads {
        EventLoopCodeReads(
            shards: loops.enumerated().map { index, loop in
                EventLoopCodeReads.Shard(
                    eventLoop: loop,
                    reads: CodeReadBatches(readsInFlight: 1, maximumBatch: 8) { subjects in
                        Dictionary(
                            uniqueKeysWithValues: subjects.map {
                                (
                                    $0,
                                    CodeStore.StoredCode(
                                        storedDecision: ByteBuffer(),
                                        ruleSet: RuleSetIdentity(id: "r", version: "1", hash: "sha256:00"),
                                        evaluatedAt: .init(microsecondsSinceEpoch: Int64(index))
                                    )
                                )
                            }
                        )
                    }
                )
            },
            clients: []
        )
    }

    @Test func eachEventLoopReadsThroughItsOwnShard() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        let loops = Array(group.makeIterator())
        let codeReads = reads(on: loops)
        for (index, loop) in loops.enumerated() {
            let code = try await codeReads.shard(for: loop).reads.code(of: "p")
            #expect(code?.evaluatedAt.microsecondsSinceEpoch == Int64(index))
        }
        try await group.shutdownGracefully()
    }

    @Test func outsideAnyOfItsEventLoopsTheFirstShardReads() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let other = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let codeReads = reads(on: Array(group.makeIterator()))
        #expect(try await codeReads.code(of: "p")?.evaluatedAt.microsecondsSinceEpoch == 0)
        #expect(try await codeReads.shard(for: nil).reads.code(of: "p")?.evaluatedAt.microsecondsSinceEpoch == 0)
        #expect(
            try await codeReads.shard(for: other.next()).reads.code(of: "p")?.evaluatedAt.microsecondsSinceEpoch == 0
        )
        try await group.shutdownGracefully()
        try await other.shutdownGracefully()
    }
}
