import NIOCore
import NIOWebSocket

/// `GET /api/status/ws`: the status page's data pushed as one text message a second (the same JSON as
/// `/api/status`). A browser that does not keep up gets the newest report, never a queue of old ones.
final class StatusFeedHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    static let path = "/api/status/ws"
    static let interval = TimeAmount.seconds(1)

    private let report: @Sendable () -> [UInt8]
    private var socket = ServerWebSocket()
    private var pump: FramePump?
    private var timer: RepeatedTask?

    init(report: @escaping @Sendable () -> [UInt8]) {
        self.report = report
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        pump = FramePump(channel: channel, metrics: nil) { json, promise in
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: json), promise: promise)
        }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: Self.interval) { _ in
            handler.value.push(channel)
        }
    }

    private func push(_ channel: any Channel) {
        guard !socket.closing else { return }
        pump?.offer(channel.allocator.buffer(bytes: report()))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        _ = socket.handleControl(unwrapInboundIn(data), context: context)
        if socket.closing { pump?.stop() }  // the peer's close answered: nothing follows
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    /// Graceful shutdown: close with 1001.
    func shutDown(channel: any Channel) {
        pump?.stop()
        socket.close(code: 1001, text: "gateway shutting down", channel: channel)
    }
}
