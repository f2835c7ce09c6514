import GatehouseProtocol
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOWebSocket
import Synchronization
import Testing

@testable import Gatehouse
@testable import Mosquitto

/// `LoopFrames`: frames for the devices of one loop, handed in from anywhere, leave in order; one delivery writes all
/// that came meanwhile and flushes each connection once; an action runs in order with the frames.
@Suite struct LoopFramesTests {
    /// Counts writes and flushes on their way out (frames pass on unchanged, to be read as outbound data).
    final class FlushCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = WebSocketFrame
        let writes = Mutex(0)
        let flushes = Mutex(0)
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            writes.withLock { $0 += 1 }
            context.write(data, promise: promise)
        }
        func flush(context: ChannelHandlerContext) {
            flushes.withLock { $0 += 1 }
            context.flush()
        }
    }

    let loop = EmbeddedEventLoop()
    let frames: LoopFrames

    init() {
        frames = LoopFrames(loop: loop)
    }

    func device(_ name: String) -> (DeviceSession, EmbeddedChannel, FlushCounter) {
        let counter = FlushCounter()
        let channel = EmbeddedChannel(handler: counter, loop: loop)
        let session = DeviceSession(
            device: name, tokenKind: nil, tokenID: nil, number: 1, connectedAt: 0, remote: "test", channel: channel,
            frames: frames, metrics: GatewayMetrics())
        return (session, channel, counter)
    }

    func texts(_ channel: EmbeddedChannel) throws -> [String] {
        var texts: [String] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) { texts.append(String(buffer: frame.data)) }
        return texts
    }

    @Test func oneDeliveryWritesInOrderAndFlushesEachConnectionOnce() throws {
        let (first, firstChannel, firstFlushes) = device("a")
        let (second, secondChannel, secondFlushes) = device("b")
        let writtenBeforeAction = Mutex(-1)
        for index in 0..<3 {
            first.sendText(Array("a\(index)".utf8))
            second.sendText(Array("b\(index)".utf8))
        }
        frames.run { writtenBeforeAction.withLock { $0 = firstFlushes.writes.withLock { $0 } } }
        first.sendText(Array("a3".utf8))
        #expect(try texts(firstChannel).isEmpty)  // nothing before the loop runs
        loop.run()
        #expect(writtenBeforeAction.withLock { $0 } == 3)
        #expect(try texts(firstChannel) == ["a0", "a1", "a2", "a3"])
        #expect(try texts(secondChannel) == ["b0", "b1", "b2"])
        #expect(firstFlushes.flushes.withLock { $0 } == 1)
        #expect(secondFlushes.flushes.withLock { $0 } == 1)

        // What comes after a delivery gets a delivery (and a flush) of its own.
        second.sendText(Array("b3".utf8))
        loop.run()
        #expect(try texts(secondChannel) == ["b3"])
        #expect(secondFlushes.flushes.withLock { $0 } == 2)
        #expect(firstFlushes.flushes.withLock { $0 } == 1)
    }

    /// Handed in on the MQTT network thread, the frames wake the loop only at the end of that thread's pass.
    @Test func fromTheNetworkThreadTheLoopIsWokenAtTheEndOfThePass() throws {
        let (session, channel, flushes) = device("a")
        AfterPass.asNetworkThread { endPass in
            session.sendText(Array("a0".utf8))
            session.sendText(Array("a1".utf8))
            loop.run()
            #expect(flushes.writes.withLock { $0 } == 0)
            endPass()
            loop.run()
        }
        #expect(try texts(channel) == ["a0", "a1"])
        #expect(flushes.flushes.withLock { $0 } == 1)
    }

    /// A frame from any other thread (the loop's own: a `welcome`, a `nack`) does not wait for the network thread's
    /// pass: it wakes the loop, and what the network thread handed in before it leaves first.
    @Test func aFrameFromElsewhereDoesNotWaitForTheNetworkThreadsPass() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let realLoop = group.next()
        let frames = LoopFrames(loop: realLoop)
        let log = Mutex<[String]>([])
        try AfterPass.asNetworkThread { endPass in
            frames.run { log.withLock { $0.append("network thread") } }
            try realLoop.submit {}.wait()  // queued after it: a delivery queued at once would have run before
            #expect(log.withLock { $0 }.isEmpty)
            try realLoop.submit { frames.run { log.withLock { $0.append("loop") } } }.wait()
            try realLoop.submit {}.wait()
            #expect(log.withLock { $0 } == ["network thread", "loop"])
            endPass()
            try realLoop.submit {}.wait()
            #expect(log.withLock { $0 } == ["network thread", "loop"])
        }
    }

    /// The close frame goes through the same queue: it leaves after what was sent before it, and before what was
    /// sent after it (a task of its own would let the later frame slip into the pending delivery, ahead of it). On a
    /// device's connection `SendQueueLimit` then drops what follows the close frame; here nothing sits below.
    @Test func aCloseFrameKeepsItsPlace() throws {
        let (session, channel, _) = device("a")
        session.sendText(Array("before".utf8))
        session.close(.normal, reason: .disconnected)
        session.sendText(Array("after".utf8))
        loop.run()
        var opcodes: [WebSocketOpcode] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) { opcodes.append(frame.opcode) }
        #expect(opcodes == [.text, .connectionClose, .text])
    }
}
