import Mosquitto
import NIOCore
import NIOWebSocket

/// Caps what waits to be written to one device (`limits.max_send_queue_bytes`), below the frame handler and the
/// frame decoder's protocol error handler, so every frame the gateway sends a device passes here (answers, pongs,
/// heartbeat pings, commands, close frames). NIO's writability stops the gateway from reading a device that does not
/// read (see `ReadGate`), but what the gateway sends on its own (commands, heartbeats) still queues up; this is the
/// hard cap on it.
///
/// - A frame is dropped while more than the cap waits (a single frame larger than the cap still goes when
///   less is queued, so no frame is refused forever), and `Overflow` is sent up the pipeline once: the frame
///   handler then closes the connection.
/// - Nothing is written after a close frame (RFC 6455 5.5.1), so a closing connection's queue stops growing.
/// - Frames the gateway encoded itself (``write(encoded:)``: `LoopFrames` writes each device's answers of one delivery
///   as one buffer, at most ``LoopFrames/batchBytes`` at a time) go from here to the socket, under the same rules.
/// - Every read passes here on its way to the frame decoder, as one `PublishBatch`: the messages of one read wake the
///   MQTT network thread once. Here, because a handler of its own would cost every device a context (0.16 KiB).
/// - It encodes the frames it passes on itself (``ByteBuffer/writeServerFrame(_:)``), unless NIO's frame encoder sits
///   below (a device upgraded by NIO's upgrader, not by `DeviceUpgradeFastPath`): a device's connection without NIO's
///   encoder keeps one handler and its header buffer less.
final class SendQueueLimit: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = WebSocketFrame
    /// With NIO's encoder below; else it writes `ByteBuffer`s (as `NIOAny`, the encoded frames).
    typealias OutboundOut = WebSocketFrame

    /// Sent up the pipeline (once per connection) when a frame was dropped because the queue is over the cap.
    struct Overflow: Sendable {
        let queuedBytes: Int
    }

    private let maxBytes: Int
    /// TLS sits below: it holds what is written until the next flush, where the channel's count cannot see it.
    private let heldUntilFlush: Bool
    /// Bytes passed since the last flush (counted only when `heldUntilFlush`).
    private var unflushed = 0
    private var closeWritten = false
    private var overflowed = false
    /// Our own context, and NIO's frame encoder's if it sits below: bytes written there go on to the socket (through
    /// TLS), past the encoder.
    private var context: ChannelHandlerContext?
    private let nioEncoderBelow: Bool
    private var encoder: ChannelHandlerContext?

    /// `nioEncoderBelow`: NIO's frame encoder sits below (said rather than looked up: a lookup that fails throws, an
    /// allocated error per connection).
    init(maxBytes: Int, tlsBelow: Bool, nioEncoderBelow: Bool) {
        self.maxBytes = maxBytes
        self.heldUntilFlush = tlsBelow
        self.nioEncoderBelow = nioEncoderBelow
    }

    /// What waits to be written to the device. NIO counts every byte written to the socket until its write
    /// completes (encoded frames, flushed or not), read from the channel rather than counted here, which would
    /// take a promise and a callback per frame, on the path of every ack; plus, with TLS, what the TLS handler
    /// holds until the flush (a burst of commands queued within one loop tick would pass unseen otherwise).
    private func queuedBytes(_ context: ChannelHandlerContext) -> Int {
        ((try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0) + unflushed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard nioEncoderBelow else { return }
        encoder = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        assert(encoder != nil, "NIO's frame encoder was said to sit below")
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        encoder = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        PublishBatch.run { context.fireChannelRead(data) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        guard admits(close: frame.opcode == .connectionClose, context: context) else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if heldUntilFlush { unflushed += frame.length + Self.headerBytes }
        guard encoder == nil else { return context.write(data, promise: promise) }
        var bytes = context.channel.allocator.buffer(capacity: frame.length + Self.headerBytes)
        bytes.writeServerFrame(frame)
        context.write(NIOAny(bytes), promise: promise)
    }

    /// Writes whole frames already encoded as a server sends them (``ByteBuffer/writeServerTextFrame(_:)``), past
    /// any frame encoder; on the loop. None of them may be a close frame.
    func write(encoded frames: ByteBuffer) {
        guard let context, admits(close: false, context: context) else { return }
        if heldUntilFlush { unflushed += frames.readableBytes }
        (encoder ?? context).write(NIOAny(frames), promise: nil)
    }

    /// Whether a frame may be written now: not after a close frame, and not while more than the cap waits (the first
    /// refusal tells the handlers above).
    private func admits(close: Bool, context: ChannelHandlerContext) -> Bool {
        guard !closeWritten else { return false }
        if close {
            closeWritten = true
        } else if case let queued = queuedBytes(context), queued > maxBytes {
            if !overflowed {
                overflowed = true
                context.fireUserInboundEventTriggered(Overflow(queuedBytes: queued))
            }
            return false
        }
        return true
    }

    func flush(context: ChannelHandlerContext) {
        unflushed = 0
        context.flush()
    }

    /// A frame's header is at most 14 bytes; counted so that many empty frames are not free.
    private static let headerBytes = 14
}
