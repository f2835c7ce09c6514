import GatehouseProtocol
import NIOCore
import NIOWebSocket

/// A WebSocket viewer (`GET /v1/live/<dev>` with `Upgrade: websocket`): every frame as one binary message holding
/// just the JPEG bytes, and `{"type":"status",…}` text messages. Messages from the viewer are read (so pings and
/// the closing handshake work) and otherwise ignored.
final class LiveSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let live: LiveView
    private let ticket: LiveView.Ticket
    private var socket = ServerWebSocket()
    private var pump: FramePump?
    private var viewer: LoopBoundViewer<LiveSocketHandler>?
    private var channel: (any Channel)?
    /// The newest status, while the viewer does not read: written once it does (one waits, never a queue).
    private var waitingStatus: LiveStatus?

    init(live: LiveView, ticket: LiveView.Ticket) {
        self.live = live
        self.ticket = ticket
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.channel = channel
        pump = FramePump(channel: channel, metrics: live.metrics) { frame, promise in
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: frame), promise: promise)
        }
        let viewer = LoopBoundViewer(ticket: ticket, connection: self, loop: context.eventLoop)
        self.viewer = viewer
        ViewerEnd.scheduleExpiry(of: viewer, channel: context.channel)
        live.attach(viewer)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // Data frames from a viewer mean nothing: they are read and dropped.
        _ = socket.handleControl(frame, context: context)
        if socket.closing { pump?.stop() }  // the peer's close answered: nothing follows
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let status = waitingStatus { sendStatus(status) }
        pump?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let viewer { live.detach(viewer) }
        viewer = nil
        context.fireChannelInactive()
    }

    /// A peer that half-closes is gone.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    private func sendStatus(_ status: LiveStatus) {
        guard let channel, channel.isActive, !socket.closing else { return }
        guard channel.isWritable else {
            waitingStatus = status
            return
        }
        waitingStatus = nil
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: status.message)), promise: nil)
    }

    func end(_ reason: ViewerEnd) {
        guard let channel else { return }
        pump?.stop()
        socket.close(code: reason.closeCode, text: reason.text, channel: channel)
    }
}

extension LiveSocketHandler: ViewerConnection {
    func deliver(_ frame: ByteBuffer) {
        guard !socket.closing else { return }  // nothing after our close frame (RFC 6455 5.5.1)
        pump?.offer(frame)
    }
    func tell(_ status: LiveStatus) { sendStatus(status) }
}
