import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import Gatehouse

/// The answer to a peer's close frame (`ChannelHandlerContext.answerClose`): its own code when that may be
/// sent, 1000 for an empty body, 1002 otherwise; the connection closes once the answer is written.
@Suite struct WebSocketCloseReplyTests {
    private final class Answerer: ChannelInboundHandler, Sendable {
        typealias InboundIn = WebSocketFrame
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.answerClose(unmaskedPayload: unwrapInboundIn(data).unmaskedData)
        }
    }

    /// The code of the close frame answered to a peer's close frame with `body`.
    private func answer(to body: [UInt8]) throws -> UInt16? {
        let channel = EmbeddedChannel(handler: Answerer())
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: body)))
        let frame = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(frame.opcode == .connectionClose)
        #expect(!channel.isActive)
        var data = frame.data
        return data.readInteger(as: UInt16.self)
    }

    @Test("a code that may be sent is echoed", arguments: [UInt16(1000), 1001, 1008, 1011, 3000, 4001, 4999])
    func echoes(code: UInt16) throws {
        #expect(try answer(to: [UInt8(code >> 8), UInt8(code & 0xFF)]) == code)
    }

    @Test("an empty body is answered 1000")
    func empty() throws {
        #expect(try answer(to: []) == 1000)
    }

    @Test("codes that must not be sent, and a one-byte body, are answered 1002", arguments: [
        [0x03, 0xED], [0x03, 0xEE], [0x03, 0xF7], [0x03, 0xE7], [0x13, 0x88], [0x03],
    ] as [[UInt8]])
    func refused(body: [UInt8]) throws {
        #expect(try answer(to: body) == 1002)
    }
}
