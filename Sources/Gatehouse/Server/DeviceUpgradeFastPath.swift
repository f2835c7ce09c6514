import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// The first handler of a connection (after TLS): reads the first request by hand and, when it is a plain
/// WebSocket upgrade to the device path that admission accepts, answers `101 Switching Protocols` and installs
/// the device's handlers, synchronously, in one step.
///
/// Why by hand: in a connect storm, NIO's HTTP parser and typed upgrader (a decoder, an encoder and an upgrade
/// handler added and removed per connection, and a chain of generic futures) were more than a third of the
/// gateway's CPU per connection (docs/benchmarks.md). Every other request — a refusal, plain HTTP, a live viewer,
/// anything `WebSocketUpgradeRequest` does not recognise — is handed, with its bytes, to NIO's pipeline, which
/// answers it as before. So this path never answers anything but a `101`.
final class DeviceUpgradeFastPath<UpgradeResult: Sendable>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What the gateway decides and installs (closures run on the connection's event loop).
    struct Steps {
        /// Admits the request: the `101`'s extra headers, or nil to let NIO's pipeline answer it.
        var admit: (HTTPRequestHead, any Channel) -> HTTPHeaders?
        /// Installs the device's handlers.
        var upgraded: (any Channel) throws -> UpgradeResult
        /// Installs NIO's HTTP pipeline after this handler; its result is the connection's.
        var fallBack: (any Channel) throws -> EventLoopFuture<UpgradeResult>
    }

    /// Longer heads go to NIO's parser, which has its own limit.
    static var maxHeadBytes: Int { 16384 }

    private let path: String
    private let steps: Steps
    private let result: EventLoopPromise<UpgradeResult>
    private var buffered: ByteBuffer?
    /// Where the search for the head's end resumes (so a head trickling in is not searched from its start each time).
    private var searchFrom = 0

    /// `result` completes when the connection is upgraded here or by NIO's pipeline, and fails if it closes first.
    init(path: String, steps: Steps, result: EventLoopPromise<UpgradeResult>) {
        self.path = path
        self.steps = steps
        self.result = result
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        let received = buffered!.readableBytes
        switch WebSocketUpgradeRequest.scan(buffered!, path: path, searchFrom: searchFrom) {
        case .incomplete where received <= Self.maxHeadBytes:
            searchFrom = max(0, received - 3)
        case .incomplete, .other:
            handOver(context: context)
        case .upgrade(let request):
            guard let headers = steps.admit(request.head, context.channel) else { return handOver(context: context) }
            upgrade(context: context, request: request, headers: headers)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        result.fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Half-closed before its request ended: it cannot be upgraded any more. Still reading its request when the
        // listener shuts down: closed, so that no device is admitted after the gateway has closed its devices.
        if let event = event as? ChannelEvent, event == .inputClosed { return context.close(promise: nil) }
        if event is ChannelShouldQuiesceEvent { return context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        result.fail(error)
        context.close(promise: nil)
    }

    private func upgrade(context: ChannelHandlerContext, request: WebSocketUpgradeRequest, headers: HTTPHeaders) {
        var rest = buffered.take()!
        rest.moveReaderIndex(forwardBy: request.length)
        context.write(wrapOutboundOut(Self.switchingProtocols(key: request.key, headers: headers, allocator: context.channel.allocator)), promise: nil)
        do {
            // None of what NIO's WebSocket upgrader installs: the device's `SendQueueLimit` encodes its frames, and
            // its `DeviceFrameHandler` cuts the frames it sends (three handlers less per device).
            let pipeline = context.pipeline.syncOperations
            let upgraded = try steps.upgraded(context.channel)
            // Flushed with the device's first frames (its welcome, which a loop task queued before this one writes
            // and flushes): one system call and one TCP segment for both.
            let channel = context.channel
            context.eventLoop.execute { channel.flush() }
            // Frames the client sent right behind its request.
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            pipeline.removeHandler(context: context, promise: nil)
            result.succeed(upgraded)
        } catch {
            result.fail(error)
            context.close(promise: nil)
        }
    }

    /// Hands the connection to NIO's HTTP pipeline with every byte received so far.
    private func handOver(context: ChannelHandlerContext) {
        let received = buffered.take()
        do {
            try steps.fallBack(context.channel).cascade(to: result)
        } catch {
            result.fail(error)
            return context.close(promise: nil)
        }
        if let received { context.fireChannelRead(wrapInboundOut(received)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The answer NIO's WebSocket upgrader gives: the admission's headers, then `Upgrade`, `Sec-WebSocket-Accept`
    /// (RFC 6455 4.2.2: base64 of the SHA-1 of the key and the protocol's GUID) and `Connection`.
    static func switchingProtocols(key: String, headers: HTTPHeaders, allocator: ByteBufferAllocator) -> ByteBuffer {
        let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        var response = allocator.buffer(capacity: 256)
        response.writeString("HTTP/1.1 101 Switching Protocols\r\n")
        for (name, value) in headers { response.writeString("\(name): \(value)\r\n") }
        response.writeString("Upgrade: websocket\r\nSec-WebSocket-Accept: \(Data(digest).base64EncodedString())\r\nConnection: upgrade\r\n\r\n")
        return response
    }
}
