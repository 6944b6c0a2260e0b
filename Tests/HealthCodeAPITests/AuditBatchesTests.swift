import HealthCodePostgres
import Synchronization
import Testing

/// Group commit of audit rows, on a write that records what it is given.
@Suite struct AuditBatchesTests {
    struct Refused: Error {}

    /// What the write was given, batch by batch.
    final class Written: Sendable {
        let batches = Mutex<[[AuditRecord]]>([])
        let failing = Mutex(false)
    }

    @Test("concurrent reads share writes; every row is written once before its read returns")
    func sharedWrites() async throws {
        let written = Written()
        let batches = AuditBatches(maximumBatch: 16) { records in
            try await Task.sleep(for: .milliseconds(5))
            written.batches.withLock { $0.append(records) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let record = AuditRecord(
                        analyst: nil,
                        platform: "p",
                        purpose: "checkpoint",
                        subject: "s\(index)",
                        endpoint: "code"
                    )
                    try await batches.record(record)
                    #expect(
                        written.batches.withLock { $0.joined().contains(record) },
                        "written before the read returns"
                    )
                }
            }
            try await group.waitForAll()
        }
        let writes = written.batches.withLock { $0 }
        #expect(writes.joined().count == 200)
        #expect(Set(writes.joined().map(\.subject)).count == 200)
        #expect(writes.allSatisfy { $0.count <= 16 })
        #expect(writes.count < 200, "concurrent reads shared writes (\(writes.count) writes)")
    }

    @Test("a failed write fails every read in its batch; later reads are written again")
    func failures() async throws {
        let written = Written()
        written.failing.withLock { $0 = true }
        let batches = AuditBatches { _ in if written.failing.withLock({ $0 }) { throw Refused() } }
        let record = AuditRecord(analyst: "a", platform: nil, purpose: "p", subject: "s", endpoint: "code")
        await #expect(throws: Refused.self) { try await batches.record(record) }
        written.failing.withLock { $0 = false }
        try await batches.record(record)
    }
}
