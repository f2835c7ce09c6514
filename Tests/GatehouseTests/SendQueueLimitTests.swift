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

    let channel = EmbeddedChannel()
    let limit = SendQueueLimit(maxBytes: 1000)
    let recorder = Recorder()

    init() throws {
        // As on a device's connection: the limit reads what waits below the frame encoder.
        try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try channel.pipeline.syncOperations.addHandler(limit)
        try channel.pipeline.syncOperations.addHandler(recorder)
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
        let accepted = (0..<4).map { _ in channel.write(frame(bytes: 300)) }  // 3 × 314 bytes queued: the 4th still goes
        let dropped = channel.write(frame(bytes: 10))
        _ = channel.write(frame(bytes: 10))
        #expect(try queuedBytes > 1000)
        #expect(recorder.overflows.withLock { $0 } == 1)
        #expect(throws: ChannelError.self) { try dropped.wait() }
        channel.flush()
        for write in accepted { try write.wait() }
        #expect(try queuedBytes == 0)
    }

    @Test func aFrameLargerThanTheCapGoesWhenLittleWaits() throws {
        let big = channel.writeAndFlush(frame(bytes: 5000))
        try big.wait()
        #expect(recorder.overflows.withLock { $0 } == 0)
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
