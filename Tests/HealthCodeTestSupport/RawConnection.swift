import NIOCore
import NIOPosix

/// A bare TCP connection to a local server, for tests of what slow or silent clients get: it sends exactly
/// the bytes it is given, when it is told to, and records what the server sends back.
public enum RawConnection {
    /// What the server sent, and whether it closed the connection, within the time allowed.
    public struct Outcome: Sendable {
        public var received: String
        public var closed: Bool
    }

    /// Connects to 127.0.0.1:`port` and runs `script`, which sends text through the function it is given
    /// (a send after the server closed is ignored); then waits until the server closes the connection or
    /// `within` has passed since the connection opened.
    public static func run(
        port: Int,
        within: Duration,
        script: @escaping @Sendable (_ send: @Sendable (String) async -> Void) async throws -> Void
    ) async throws -> Outcome {
        let deadline = ContinuousClock.now.advanced(by: within)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let connection = channel.channel
        var outcome = Outcome(received: "", closed: false)
        do {
            try await channel.executeThenClose { inbound, outbound in
                outcome = await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask {
                        try await script { text in try? await outbound.write(ByteBuffer(string: text)) }
                    }
                    tasks.addTask {
                        try await Task.sleep(until: deadline)
                        try? await connection.close()
                    }
                    var received = ""
                    // A reset ends the connection as a close does.
                    do {
                        for try await buffer in inbound { received += String(buffer: buffer) }
                    } catch {}
                    tasks.cancelAll()
                    // Ended before the deadline: the server closed it (the timer closes it only at the deadline).
                    return Outcome(received: received, closed: ContinuousClock.now < deadline)
                }
            }
        } catch ChannelError.alreadyClosed, ChannelError.ioOnClosedChannel {
            // Closed by the server or at the deadline before `executeThenClose` could close it.
        }
        return outcome
    }
}
