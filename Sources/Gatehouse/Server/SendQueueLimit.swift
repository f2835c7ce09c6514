import NIOCore
import NIOWebSocket

/// Caps what waits to be written to one device (`limits.max_send_queue_bytes`), between the frame handler and
/// the frame encoder, so every frame the gateway sends a device passes here (answers, pongs, heartbeat pings,
/// commands). NIO's writability stops the gateway from reading a device that does not read (see `ReadGate`),
/// but what the gateway sends on its own (commands, heartbeats) still queues up; this is the hard cap on it.
///
/// - A frame is dropped while more than the cap waits (a single frame larger than the cap still goes when
///   less is queued, so no frame is refused forever), and `Overflow` is sent up the pipeline once: the frame
///   handler then closes the connection.
/// - Nothing is written after a close frame (RFC 6455 5.5.1), so a closing connection's queue stops growing.
final class SendQueueLimit: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Sent up the pipeline (once per connection) when a frame was dropped because the queue is over the cap.
    struct Overflow: Sendable {
        let queuedBytes: Int
    }

    /// A frame's header is at most 14 bytes; counted so that many empty frames are not free.
    private static let headerBytes = 14
    private let maxBytes: Int
    private var queued = 0
    private var closeWritten = false
    private var overflowed = false

    init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    /// Bytes written to the channel whose write has not completed yet.
    var queuedBytes: Int { queued }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        guard !closeWritten else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if frame.opcode == .connectionClose {
            closeWritten = true
        } else if queued > maxBytes {
            promise?.fail(ChannelError.outputClosed)
            if !overflowed {
                overflowed = true
                context.fireUserInboundEventTriggered(Overflow(queuedBytes: queued))
            }
            return
        }
        let size = frame.length + Self.headerBytes
        queued += size
        let completion = promise ?? context.eventLoop.makePromise()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        completion.futureResult.whenComplete { _ in handler.value.queued -= size }
        context.write(wrapOutboundOut(frame), promise: completion)
    }
}
