import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import Gatehouse

/// The cap on what waits to be written to one device.
@Suite struct SendQueueLimitTests {
    /// Records the overflow event the limit sends up the pipeline.
    final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = Never
        let overflows = Mutex(0)
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is SendQueueLimit.Overflow { overflows.withLock { $0 += 1 } }
        }
    }

    /// Stands in for TLS: holds what is written until the flush (as NIOSSL does with the plaintext it encrypts then).
    final class HoldUntilFlush: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        private var held: [(NIOAny, EventLoopPromise<Void>?)] = []
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            held.append((data, promise))
        }
        func flush(context: ChannelHandlerContext) {
            for (data, promise) in held { context.write(data, promise: promise) }
            held.removeAll()
            context.flush()
        }
    }

    let channel: EmbeddedChannel
    let recorder: Recorder

    init() throws {
        (channel, recorder) = try Self.device(tlsBelow: false)
    }

    /// As on a device's connection: the limit reads what waits below the frame encoder (and TLS).
    static func device(tlsBelow: Bool) throws -> (EmbeddedChannel, Recorder) {
        let (channel, recorder) = (EmbeddedChannel(), Recorder())
        if tlsBelow { try channel.pipeline.syncOperations.addHandler(HoldUntilFlush()) }
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.pipeline.syncOperations.addHandler(SendQueueLimit(maxBytes: 1000, tlsBelow: tlsBelow, nioEncoderBelow: true))
        try channel.pipeline.syncOperations.addHandler(recorder)
        return (channel, recorder)
    }

    /// Bytes written and not yet flushed (an embedded channel's writes complete on flush).
    var queuedBytes: Int {
        get throws { try channel.getOption(.bufferedWritableBytes).wait() }
    }

    /// The opcodes of the frames written to the socket, in order.
    func writtenOpcodes() throws -> [WebSocketOpcode] {
        var bytes = ByteBuffer()
        while var written = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&written) }
        var opcodes: [WebSocketOpcode] = []
        while let first = bytes.readInteger(as: UInt8.self), let second = bytes.readInteger(as: UInt8.self) {
            opcodes.append(WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F)!)
            var length = Int(second & 0x7F)
            if length == 126 { length = Int(bytes.readInteger(as: UInt16.self)!) }
            bytes.moveReaderIndex(forwardBy: length)
        }
        return opcodes
    }

    func frame(_ opcode: WebSocketOpcode = .text, bytes: Int) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: opcode, data: ByteBuffer(repeating: 0x41, count: bytes))
    }

    @Test func framesBeyondTheCapAreDroppedAndTheHandlerIsToldOnce() throws {
        // Written but not flushed: the bytes wait, as they do for a device that reads nothing.
        let accepted = (0..<4).map { _ in channel.write(frame(bytes: 300)) }  // 3 × 304 bytes queued: the 4th still goes
        let dropped = channel.write(frame(bytes: 10))
        _ = channel.write(frame(bytes: 10))
        #expect(try queuedBytes > 1000)
        // Required: without the drop, waiting for the dropped frame below would block (nothing completes it).
        try #require(recorder.overflows.withLock { $0 } == 1)
        #expect(throws: ChannelError.self) { try dropped.wait() }
        channel.flush()
        for write in accepted { try write.wait() }
        #expect(try queuedBytes == 0)
    }

    /// With TLS below, a burst written within one loop tick is held by TLS until the flush, where the channel's count
    /// does not see it: the limit counts it itself until then.
    @Test func aBurstHeldByTLSUntilTheFlushIsCapped() throws {
        let (channel, recorder) = try Self.device(tlsBelow: true)
        let accepted = (0..<4).map { _ in channel.write(frame(bytes: 300)) }  // 3 × 314 counted: the 4th still goes
        let dropped = channel.write(frame(bytes: 10))
        // Required: without the drop, waiting for the dropped frame below would block (nothing completes it).
        try #require(recorder.overflows.withLock { $0 } == 1)
        #expect(throws: ChannelError.self) { try dropped.wait() }
        channel.flush()
        for write in accepted { try write.wait() }
        // Flushed and written: nothing waits, and the next frame goes.
        try channel.writeAndFlush(frame(bytes: 10)).wait()
    }

    @Test func aFrameLargerThanTheCapGoesWhenLittleWaits() throws {
        let big = channel.writeAndFlush(frame(bytes: 5000))
        try big.wait()
        #expect(recorder.overflows.withLock { $0 } == 0)
    }

    /// Without NIO's encoder below (a device upgraded by the fast path) the limit encodes what it passes on, as a
    /// server's frames: unmasked, the shortest length.
    @Test func withoutNIOsEncoderBelowItEncodesTheFramesItself() throws {
        let channel = EmbeddedChannel(handler: SendQueueLimit(maxBytes: 1000, tlsBelow: false, nioEncoderBelow: false))
        try channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, data: ByteBuffer(string: "x"))).wait()
        try channel.writeAndFlush(frame(.text, bytes: 200)).wait()
        try channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8]))).wait()
        let pong = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(pong.readableBytesView) == [0x8A, 0x01, UInt8(ascii: "x")])
        let text = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(text.readableBytesView.prefix(4)) == [0x81, 126, 0x00, 200] && text.readableBytes == 204)
        let close = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(close.readableBytesView) == [0x88, 0x02, 0x03, 0xE8])
        #expect(throws: ChannelError.self) { try channel.writeAndFlush(frame(bytes: 1)).wait() }
    }

    /// Frames encoded by `LoopFrames` pass the same cap, and with TLS below (which holds them until the flush, where
    /// the channel's count cannot see them) they are counted until then.
    @Test func encodedFramesHeldByTLSAreCapped() throws {
        let (channel, recorder) = try Self.device(tlsBelow: true)
        let limit = try channel.pipeline.syncOperations.handler(type: SendQueueLimit.self)
        for _ in 0..<4 { limit.write(encoded: ByteBuffer(repeating: 0x41, count: 400)) }  // the 4th: 1,200 counted
        #expect(recorder.overflows.withLock { $0 } == 1)
        channel.flush()
        var written = 0
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { written += bytes.readableBytes }
        #expect(written == 1200)
    }

    @Test func nothingIsWrittenAfterTheCloseFrame() throws {
        for _ in 0..<4 { _ = channel.write(frame(bytes: 300)) }
        // The close frame passes even over the cap; nothing after it does.
        let close = channel.write(frame(.connectionClose, bytes: 2))
        let after = channel.writeAndFlush(frame(.pong, bytes: 2))
        try close.wait()
        #expect(throws: ChannelError.self) { try after.wait() }
        let opcodes = try writtenOpcodes()
        #expect(opcodes.last == .connectionClose && opcodes.count == 5)
    }
}
