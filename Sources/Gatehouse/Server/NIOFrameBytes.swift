import NIOCore
import NIOWebSocket

/// On NIO's upgrade path (the requests `DeviceUpgradeFastPath` leaves to NIO), NIO's upgrader installs its own frame
/// decoder, while `DeviceFrameHandler` reads bytes: this turns each frame NIO cut back into the bytes it came as
/// (header, mask key, payload as it was masked). NIO's decoder and protocol error handler have already refused what
/// is over the frame size or a broken control frame, as `InboundFrameParser` would have.
final class NIOFrameBytes: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        context.fireChannelRead(wrapInboundOut(Self.bytes(of: frame, allocator: context.channel.allocator)))
    }

    static func bytes(of frame: WebSocketFrame, allocator: ByteBufferAllocator) -> ByteBuffer {
        var payload = frame.data
        var bytes = allocator.buffer(capacity: 14 + payload.readableBytes)
        let flags = (frame.fin ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) | (frame.rsv2 ? 0x20 : 0) | (frame.rsv3 ? 0x10 : 0)
        bytes.writeInteger(UInt8(flags) | UInt8(webSocketOpcode: frame.opcode))
        let mask: UInt8 = frame.maskKey == nil ? 0 : 0x80
        switch payload.readableBytes {
        case ...125: bytes.writeInteger(mask | UInt8(payload.readableBytes))
        case ...0xFFFF: bytes.writeMultipleIntegers(mask | 126, UInt16(payload.readableBytes))
        default: bytes.writeMultipleIntegers(mask | 127, UInt64(payload.readableBytes))
        }
        if let key = frame.maskKey { bytes.writeBytes(key) }
        bytes.writeBuffer(&payload)
        return bytes
    }
}
