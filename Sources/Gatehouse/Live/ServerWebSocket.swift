import NIOCore
import NIOWebSocket

/// The WebSocket duties every server-side stream connection shares (live viewers, the status feed): answer
/// pings, take part in the closing handshake, and close with a code of its own. Lives on the connection's loop.
///
/// What it writes is bounded for a peer that does not read: one pong at a time (a ping meanwhile is answered once
/// that one has left, and only the newest such ping, as RFC 6455 5.5.3 allows), and a close that ends the connection
/// after `closeFrameTimeout` even when the close frame cannot leave.
struct ServerWebSocket {
    /// Set once our close frame is out: the connection only waits for the peer's.
    private(set) var closing = false
    private let pongs = Pongs()

    /// The pong being written, and the payload of the newest ping that came meanwhile (none once we close).
    private final class Pongs {
        var writing = false
        var next: ByteBuffer?
        var closed = false
    }

    /// Handles a control frame; returns false for a data frame (the caller decides about those).
    mutating func handleControl(_ frame: WebSocketFrame, context: ChannelHandlerContext) -> Bool {
        switch frame.opcode {
        case .ping:
            guard !closing else { return true }
            Self.answerPing(frame.unmaskedData, pongs: pongs, channel: context.channel)
            return true
        case .pong:
            return true
        case .connectionClose:
            if closing {
                context.close(promise: nil)
                return true
            }
            closing = true
            pongs.closed = true
            context.answerClose(unmaskedPayload: frame.unmaskedData)
            return true
        default:
            return false
        }
    }

    private static func answerPing(_ data: ByteBuffer, pongs: Pongs, channel: any Channel) {
        guard !pongs.writing else {
            pongs.next = data
            return
        }
        pongs.writing = true
        let bound = NIOLoopBound(pongs, eventLoop: channel.eventLoop)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .pong, data: data)).whenComplete { _ in
            let pongs = bound.value
            pongs.writing = false
            guard !pongs.closed, let next = pongs.next else { return }
            pongs.next = nil
            answerPing(next, pongs: pongs, channel: channel)
        }
    }

    /// Sends our close frame; the connection closes on the peer's answer, or a second after the frame left, or
    /// after `closeFrameTimeout` if it cannot leave (a peer that does not read).
    mutating func close(code: UInt16, text: String, channel: any Channel) {
        guard !closing, channel.isActive else { return }
        closing = true
        pongs.closed = true  // a pong waiting for the one in flight would follow our close frame
        var buffer = channel.allocator.buffer(capacity: 2 + text.utf8.count)
        buffer.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: Int(code)))
        buffer.writeString(text)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)).whenComplete { _ in
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
        channel.eventLoop.scheduleTask(in: Self.closeFrameTimeout) { channel.close(promise: nil) }
    }

    /// How long a close frame may wait behind what the peer has not read.
    static let closeFrameTimeout = DeviceSession.closeFrameTimeout
}
