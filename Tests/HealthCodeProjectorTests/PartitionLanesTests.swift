import Testing

@testable import HealthCodeProjector

@Suite("Partition lanes")
struct PartitionLanesTests {
    typealias Lanes = PartitionLanes.State<String>

    @Test("a partition's batches go to one lane in order; other partitions get lanes of their own")
    func lanesPerPartition() {
        var lanes = Lanes(limit: 8)
        #expect(lanes.submit("p0-a", partition: 0) == .init(startLane: true, pause: false))
        #expect(lanes.submit("p1-a", partition: 1) == .init(startLane: true, pause: false))
        #expect(lanes.next(for: 0)?.batch == "p0-a")
        #expect(lanes.submit("p0-b", partition: 0) == .init(startLane: false, pause: true))
        #expect(lanes.submit("p0-c", partition: 0) == .init(startLane: false, pause: false))
        let second = lanes.next(for: 0)
        #expect(second?.batch == "p0-b")
        #expect(second?.resume == false, "p0-c still waits")
        let third = lanes.next(for: 0)
        #expect(third?.batch == "p0-c")
        #expect(third?.resume == true, "nothing of partition 0 waits any more")
        #expect(lanes.next(for: 0) == nil)
        #expect(!lanes.running.contains(0))
        #expect(lanes.submit("p0-d", partition: 0).startLane, "a batch after the lane stopped starts a new one")
    }

    @Test("at the limit there is no demand; the batch that makes room says so, once")
    func limit() {
        var lanes = Lanes(limit: 2)
        _ = lanes.submit("a", partition: 0)
        #expect(lanes.hasRoom)
        _ = lanes.submit("b", partition: 1)
        #expect(!lanes.hasRoom, "two batches in flight: the consumer hands out no more")
        let madeRoom = lanes.finished(1)
        #expect(madeRoom, "the first batch done makes room: the consumer is told")
        #expect(lanes.hasRoom)
        let madeRoomAgain = lanes.finished(1)
        #expect(!madeRoomAgain, "room was there already: nothing to tell")
        #expect(lanes.inFlight == 0)
    }

    @Test("revoked partitions' waiting batches are dropped and count as done")
    func revoke() {
        var lanes = Lanes(limit: 8)
        _ = lanes.submit("a", partition: 3)
        _ = lanes.next(for: 3)
        _ = lanes.submit("b", partition: 3)
        _ = lanes.submit("c", partition: 3)
        #expect(lanes.paused.contains(3))
        #expect(lanes.drop([3]).wasPaused, "the caller resumes it when it keeps the partition (a rewind)")
        #expect(lanes.inFlight == 1, "only the batch in hand is left")
        #expect(!lanes.drop([3]).wasPaused)
        #expect(!lanes.paused.contains(3))
        #expect(lanes.next(for: 3) == nil)
        _ = lanes.abandon(3)
        #expect(!lanes.running.contains(3))
    }
}
