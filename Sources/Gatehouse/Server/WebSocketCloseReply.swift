import NIOCore
import NIOWebSocket

extension ChannelHandlerContext {
    /// Answers the peer's close frame with the same status code, then closes the connection once the answer
    /// is written (RFC 6455 §5.5.1). Every server-side WebSocket (devices, viewers, the status feed) ends so.
    func answerClose(_ frame: WebSocketFrame) {
        var data = frame.unmaskedData
        var reply = channel.allocator.buffer(capacity: 2)
        reply.write(webSocketErrorCode: data.readWebSocketErrorCode() ?? .normalClosure)
        let channel = self.channel
        writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
