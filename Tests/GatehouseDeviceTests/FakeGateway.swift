import GatehouseProtocol
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// A stand-in gateway on a loopback port: a plain NIO WebSocket server that greets every connection with
/// `welcome` followed by the frames given, acks every message with a `seq`, and records what devices send.
final class FakeGateway: Sendable {
    /// What the devices sent, as parsed JSON, when each connection began, and the close codes they sent.
    struct Record: Sendable {
        var messages: [JSONValue] = []
        var connections: [ContinuousClock.Instant] = []
        var closeCodes: [UInt16] = []
    }

    let port: Int
    private let channel: any Channel
    private let log: RecordLog

    /// Starts listening; `afterWelcome` is sent to each connection right after its `welcome`.
    init(afterWelcome: [GatewayMessage]) async throws {
        let log = RecordLog()
        self.log = log
        let frames = afterWelcome.map { String(decoding: $0.encoded(), as: UTF8.self) }
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, head in
                        var headers = HTTPHeaders()
                        if head.headers["Sec-WebSocket-Protocol"].first != nil {
                            headers.add(name: "Sec-WebSocket-Protocol", value: "gatehouse.v1")
                        }
                        return channel.eventLoop.makeSucceededFuture(headers)
                    },
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(FakeGatewayHandler(frames: frames, log: log))
                        }
                    })
                return channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    /// `ws://127.0.0.1:<port>/v1/connect`.
    var url: String { "ws://127.0.0.1:\(port)/v1/connect" }

    /// A snapshot of what was recorded.
    var recorded: Record { log.record.withLock { $0 } }

    /// Stops listening.
    func stop() async throws { try await channel.close() }
}

/// The record, shared with the per-connection handlers.
final class RecordLog: Sendable {
    let record = Mutex(FakeGateway.Record())
}

/// One device connection of the fake gateway.
final class FakeGatewayHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let frames: [String]
    private let log: RecordLog

    init(frames: [String], log: RecordLog) {
        self.frames = frames
        self.log = log
    }

    func handlerAdded(context: ChannelHandlerContext) {
        log.record.withLock { $0.connections.append(.now) }
        let welcome = GatewayMessage.welcome(device: "dev-1", gateway: "gw-fake", session: 1, heartbeatS: 30, maxMessageBytes: 65536)
        for text in [String(decoding: welcome.encoded(), as: UTF8.self)] + frames {
            send(text, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let bytes = Array(frame.unmaskedData.readableBytesView)
            guard let message = try? JSONValue(parsing: bytes) else { return }
            log.record.withLock { $0.messages.append(message) }
            if let seq = message["seq"]?.numberValue?.uint64Value {
                send(GatewayMessage.ackString(seq: seq), context: context)
            }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .unknown(1005)
            log.record.withLock { $0.closeCodes.append(UInt16(webSocketErrorCode: code)) }
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: code)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
        default:
            break
        }
    }

    private func send(_ text: String, context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(string: text)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buffer)), promise: nil)
    }
}
