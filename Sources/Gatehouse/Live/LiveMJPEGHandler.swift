import GatehouseProtocol
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Serves `GET /v1/live/<dev>.mjpeg` on any plain HTTP request of a connection (also one kept alive after other
/// requests): `multipart/x-mixed-replace; boundary=frame`, one part per frame with `Content-Type: image/jpeg`
/// and `Content-Length`. Sits in the HTTP pipeline before Hummingbird's router and passes every other request on.
/// A stream is the connection's last response: it ends when the viewer goes away or the gateway stops.
final class LiveMJPEGHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Fired down the pipeline at graceful shutdown: an open stream ends.
    struct Shutdown: Sendable {}

    private enum Mode {
        case passing
        /// The rest of a refused live request is read and dropped.
        case swallowing
        case streaming(LoopBoundViewer<LiveMJPEGHandler>)
    }

    private let live: LiveView
    private var mode = Mode.passing
    private var pump: FramePump?

    init(live: LiveView) {
        self.live = live
    }

    private static let crlf = ByteBuffer(string: "\r\n")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch mode {
        case .passing:
            guard case .head(let request) = part, request.method == .get,
                  let path = request.path,
                  let viewerRequest = ViewerRequest(mjpegTarget: path, authorization: request.headerFields[.authorization])
            else { return context.fireChannelRead(data) }
            switch live.admit(viewerRequest) {
            case .failure(let refusal):
                mode = .swallowing
                writeRefusal(refusal, context: context)
            case .success(let ticket):
                startStream(ticket, context: context)
            }
        case .swallowing:
            if case .end = part { mode = .passing }
        case .streaming:
            break
        }
    }

    private func writeRefusal(_ refusal: Refusal, context: ChannelHandlerContext) {
        let body = refusal.body
        var head = HTTPResponse(status: .init(code: Int(refusal.status.code)))
        head.headerFields = [.contentType: "application/json", .contentLength: String(body.count)]
        if let seconds = refusal.retryAfter { head.headerFields[.retryAfter] = String(seconds) }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func startStream(_ ticket: LiveView.Ticket, context: ChannelHandlerContext) {
        let head = HTTPResponse(status: .ok, headerFields: [
            .contentType: "multipart/x-mixed-replace; boundary=frame",
            .cacheControl: "no-store",
            .connection: "close",
        ])
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        pump = FramePump(channel: context.channel, metrics: live.metrics) { [self] frame, promise in
            let header = "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: \(frame.readableBytes)\r\n\r\n"
            context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: header))), promise: nil)
            context.write(wrapOutboundOut(.body(frame)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(Self.crlf)), promise: promise)
        }
        let viewer = LoopBoundViewer(ticket: ticket, connection: self, loop: context.eventLoop)
        mode = .streaming(viewer)
        ViewerEnd.scheduleExpiry(of: viewer, channel: context.channel)
        // Hummingbird's HTTPConnectionStateHandler, before this handler, does not pass channelInactive on.
        let live = self.live
        context.channel.closeFuture.whenComplete { _ in
            live.detach(viewer)
            live.release()
        }
        live.attach(viewer)
    }

    /// Ends the stream: the closing boundary and HTTP's last chunk after the frame being written (the waiting one is
    /// dropped), then the connection closes: once they are written, or after `DeviceSession.closeFrameTimeout` if they
    /// cannot leave (a viewer that stopped reading). At graceful shutdown Hummingbird's connection handler closes the connection as
    /// soon as the last chunk is handed on, so a viewer that stopped reading may miss the end then.
    private func finish() {
        guard case .streaming = mode, !ending, let context, context.channel.isActive else { return }
        ending = true
        pump?.stop()
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: "--frame--\r\n"))), promise: nil)
        context.channel.close(onceWritten: context.writeAndFlush(wrapOutboundOut(.end(nil))))
    }

    private var ending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// The connection is gone: the references the stream made to this handler (the viewer's, the pump's writer) go
    /// with it.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        pump?.stop()
        pump = nil
        mode = .passing
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Shutdown {
            finish()
            return
        }
        if case .streaming = mode, let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

}

extension LiveMJPEGHandler: ViewerConnection {
    func deliver(_ frame: ByteBuffer) { pump?.offer(frame) }
    /// An MJPEG viewer gets frames only.
    func tell(_ status: LiveStatus) {}
    func end(_ reason: ViewerEnd) { finish() }
}
