import NIOCore
import NIOWebSocket

/// The WebSocket duties every server-side stream connection shares (live viewers, the status feed): answer
/// pings, take part in the closing handshake, and close with a code of its own. Lives on the connection's loop.
struct ServerWebSocket {
    /// Set once our close frame is out: the connection only waits for the peer's.
    private(set) var closing = false

    /// Handles a control frame; returns false for a data frame (the caller decides about those).
    mutating func handleControl(_ frame: WebSocketFrame, context: ChannelHandlerContext) -> Bool {
        switch frame.opcode {
        case .ping:
            guard !closing else { return true }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(NIOAny(pong), promise: nil)
            return true
        case .pong:
            return true
        case .connectionClose:
            if closing {
                context.close(promise: nil)
                return true
            }
            closing = true
            context.answerClose(unmaskedPayload: frame.unmaskedData)
            return true
        default:
            return false
        }
    }

    /// Sends our close frame; the connection closes on the peer's answer, or after a second without one.
    mutating func close(code: UInt16, text: String, channel: any Channel) {
        guard !closing, channel.isActive else { return }
        closing = true
        var buffer = channel.allocator.buffer(capacity: 2 + text.utf8.count)
        buffer.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: Int(code)))
        buffer.writeString(text)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)).whenComplete { _ in
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }
}
