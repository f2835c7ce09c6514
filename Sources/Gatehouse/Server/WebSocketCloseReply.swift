import NIOCore
import NIOWebSocket

extension ChannelHandlerContext {
    /// Answers the peer's close frame (its payload unmasked) with the same status code, then closes the connection once the answer
    /// is written (RFC 6455 §5.5.1), or after `DeviceSession.closeFrameTimeout` if it cannot leave (a peer that sent its
    /// close and reads no more kept its connection, and a viewer its `max_viewers` place). Every server-side WebSocket
    /// (devices, viewers, the status feed) ends so.
    /// A code that may not be sent (1005, 1006, 1015, unassigned ones) or a one-byte body is answered 1002.
    func answerClose(unmaskedPayload: ByteBuffer) {
        var data = unmaskedPayload
        var reply = channel.allocator.buffer(capacity: 2)
        let code: WebSocketErrorCode =
            switch (data.readableBytes, data.readInteger(as: UInt16.self)) {
            case (0, _): .normalClosure
            case (_, let raw?) where Self.maySend(raw): WebSocketErrorCode(codeNumber: Int(raw))
            default: .protocolError
            }
        reply.write(webSocketErrorCode: code)
        channel.close(onceWritten: writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply))))
    }

    /// Close codes an endpoint may put in a close frame (RFC 6455 §7.4; 1012–1014 as registered with IANA).
    private static func maySend(_ code: UInt16) -> Bool {
        (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
    }
}

extension Channel {
    /// Closes the connection once `written` (its last words) completes, or after `DeviceSession.closeFrameTimeout` if
    /// they cannot leave: a peer that reads no more would otherwise keep its connection for good.
    func close(onceWritten written: EventLoopFuture<Void>) {
        let timeout = eventLoop.scheduleTask(in: DeviceSession.closeFrameTimeout) { self.close(promise: nil) }
        closeFuture.whenComplete { _ in timeout.cancel() }  // a closed connection is not kept for the timeout
        written.whenComplete { _ in self.close(promise: nil) }
    }
}
