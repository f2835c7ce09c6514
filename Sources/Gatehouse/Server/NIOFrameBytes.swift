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
        var bytes = allocator.buffer(capacity: 14 + frame.data.readableBytes)
        bytes.writeFrame(frame)
        return bytes
    }
}
