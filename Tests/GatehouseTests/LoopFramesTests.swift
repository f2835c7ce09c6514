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
/// that came meanwhile as one buffer per connection, flushed once; an action runs in order with the frames.
@Suite struct LoopFramesTests {
    /// Counts writes and flushes on their way to the socket (below the frame encoder; the bytes pass on unchanged, to
    /// be read as outbound data).
    final class FlushCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
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

    func device(_ name: String, maxSendQueueBytes: Int = 1 << 20) throws -> (DeviceSession, EmbeddedChannel, FlushCounter) {
        let counter = FlushCounter()
        let channel = EmbeddedChannel(handler: counter, loop: loop)
        let output = try channel.addDeviceOutput(maxSendQueueBytes: maxSendQueueBytes)
        let session = DeviceSession(
            device: name, tokenKind: nil, tokenID: nil, number: 1, connectedAt: 0, remote: "test", channel: channel,
            output: output, frames: frames, metrics: GatewayMetrics())
        return (session, channel, counter)
    }

    func texts(_ channel: EmbeddedChannel) throws -> [String] {
        try channel.readOutboundFrames().map { String(buffer: $0.data) }
    }

    @Test func oneDeliveryWritesEachConnectionsFramesInOrderAsOneBuffer() throws {
        let (first, firstChannel, firstFlushes) = try device("a")
        let (second, secondChannel, secondFlushes) = try device("b")
        let (third, thirdChannel, thirdFlushes) = try device("c")
        for index in 0..<3 {
            first.sendText(Array("a\(index)".utf8))
            second.sendText(Array("b\(index)".utf8))
            third.answer(seq: UInt64(index), .safe)
        }
        #expect(try texts(firstChannel).isEmpty)  // nothing before the loop runs
        loop.run()
        #expect(try texts(firstChannel) == ["a0", "a1", "a2"])
        #expect(try texts(secondChannel) == ["b0", "b1", "b2"])
        #expect(try texts(thirdChannel) == (0..<3).map { #"{"type":"ack","seq":\#($0)}"# })
        for counter in [firstFlushes, secondFlushes, thirdFlushes] {
            #expect(counter.writes.withLock { $0 } == 1)
            #expect(counter.flushes.withLock { $0 } == 1)
        }

        // What comes after a delivery gets a delivery (and a flush) of its own.
        second.sendText(Array("b3".utf8))
        loop.run()
        #expect(try texts(secondChannel) == ["b3"])
        #expect(secondFlushes.flushes.withLock { $0 } == 2)
        #expect(firstFlushes.flushes.withLock { $0 } == 1)
    }

    /// An ack is encoded in the delivery, from its `seq`, in order with the other frames; a refusal is a `nack`.
    @Test func acksAreEncodedInOrderWithTheOtherFrames() throws {
        let (session, channel, counter) = try device("a")
        session.sendText(Array(#"{"type":"welcome"}"#.utf8))
        session.answer(seq: 7, .safe)
        session.answer(seq: UInt64.max, .safe)
        session.answer(seq: 8, .refused(.rateLimited, "slow down"))
        session.answer(seq: 0, .safe)
        loop.run()
        let texts = try texts(channel)
        #expect(texts.count == 5)
        #expect(Array(texts.prefix(3)) == [#"{"type":"welcome"}"#, #"{"type":"ack","seq":7}"#, #"{"type":"ack","seq":18446744073709551615}"#])
        #expect(texts[3].contains(#""type":"nack""#) && texts[3].contains(#""seq":8"#) && texts[3].contains("rate_limited"))
        #expect(texts[4] == #"{"type":"ack","seq":0}"#)
        #expect(counter.writes.withLock { $0 } == 1)
    }

    /// An action runs after the frames handed in before it were written (and flushed), and before those after it.
    @Test func anActionRunsAfterTheFramesBeforeIt() throws {
        let (session, channel, counter) = try device("a")
        let writtenBeforeAction = Mutex(-1)
        session.sendText(Array("a0".utf8))
        session.answer(seq: 1, .safe)
        frames.run { writtenBeforeAction.withLock { $0 = counter.writes.withLock { $0 } } }
        session.sendText(Array("a1".utf8))
        loop.run()
        #expect(writtenBeforeAction.withLock { $0 } == 1)
        #expect(try texts(channel) == ["a0", #"{"type":"ack","seq":1}"#, "a1"])
        #expect(counter.flushes.withLock { $0 } == 2)
    }

    /// Frames of any size keep their bytes: the three length encodings, read back with NIO's decoder.
    @Test func framesOfEverySizeArriveWhole() throws {
        let (session, channel, _) = try device("a")
        let sizes = [0, 125, 126, 65_535, 65_536, 200_000]
        for size in sizes { session.sendText((0..<size).map { UInt8(ascii: "a") + UInt8($0 % 26) }) }
        loop.run()
        let received = try channel.readOutboundFrames()
        #expect(received.map(\.data.readableBytes) == sizes)
        #expect(received.allSatisfy { $0.fin && $0.opcode == .text && $0.maskKey == nil })
        for (frame, size) in zip(received, sizes) {
            #expect(Array(frame.data.readableBytesView) == (0..<size).map { UInt8(ascii: "a") + UInt8($0 % 26) })
        }
    }

    /// A server frame's header: FIN and the opcode, no mask, the length in its shortest form (RFC 6455 5.2).
    @Test func aFramesHeaderIsTheShortestForm() {
        for (size, header) in [(125, [0x81, 125]), (126, [0x81, 126, 0x00, 126]), (65_535, [0x81, 126, 0xFF, 0xFF]),
                               (65_536, [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0])] as [(Int, [UInt8])] {
            var buffer = ByteBuffer()
            Array(repeating: UInt8(ascii: "x"), count: size).withUnsafeBytes { buffer.writeServerTextFrame($0) }
            #expect(Array(buffer.readableBytesView.prefix(header.count)) == header, "\(size) bytes")
            #expect(buffer.readableBytes == header.count + size)
        }
    }

    /// A device's buffer is written every `batchBytes` (64 KiB), so the send-queue cap, checked on each write, is
    /// checked as a long delivery goes on (`aBatchOverTheSendQueueCapIsDropped` shows a write refused).
    @Test func aLongDeliveryIsWrittenEvery64KiB() throws {
        let (session, channel, counter) = try device("a")
        let frames = (0..<3).map { Array(repeating: UInt8(ascii: "a") + UInt8($0), count: 40_000) }
        for frame in frames { session.sendText(frame) }
        loop.run()
        #expect(counter.writes.withLock { $0 } == 2)  // the first two frames (80 KB), then the third
        #expect(try channel.readOutboundFrames().map { Array($0.data.readableBytesView) } == frames)
    }

    /// A device whose connection closed before the delivery: its frames go nowhere, and nothing fails.
    @Test func framesForAClosedConnectionAreDropped() throws {
        let (session, channel, counter) = try device("a")
        try channel.close().wait()
        session.sendText(Array("late".utf8))
        session.answer(seq: 1, .safe)
        loop.run()
        #expect(counter.writes.withLock { $0 } == 0)
    }

    /// The batch passes the send-queue cap like any frame: over the cap it is dropped and the handlers are told.
    @Test func aBatchOverTheSendQueueCapIsDropped() throws {
        let (session, channel, _) = try device("a", maxSendQueueBytes: 100)
        let recorder = SendQueueLimitTests.Recorder()
        try channel.pipeline.syncOperations.addHandler(recorder)
        // Written and not flushed: 152 bytes wait, as for a device that reads nothing.
        _ = channel.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(repeating: 0x41, count: 150)))
        session.sendText(Array("dropped".utf8))
        loop.run()
        #expect(recorder.overflows.withLock { $0 } == 1)
        #expect(try channel.readOutboundFrames().map(\.data.readableBytes) == [150])
    }

    /// Handed in on the MQTT network thread, the frames wake the loop only at the end of that thread's pass.
    @Test func fromTheNetworkThreadTheLoopIsWokenAtTheEndOfThePass() throws {
        let (session, channel, flushes) = try device("a")
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

    /// The close frame goes through the same queue: it leaves after what was sent before it, and what was sent after
    /// it does not leave (a task of its own would let the later frame slip into the pending delivery, ahead of it,
    /// where `SendQueueLimit` could not tell it from the frames before).
    @Test func aCloseFrameKeepsItsPlace() throws {
        let (session, channel, _) = try device("a")
        session.sendText(Array("before".utf8))
        session.close(.normal, reason: .disconnected)
        session.sendText(Array("after".utf8))
        loop.run()
        #expect(try channel.readOutboundFrames().map(\.opcode) == [.text, .connectionClose])
    }
}
