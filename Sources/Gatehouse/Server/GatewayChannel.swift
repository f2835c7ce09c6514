import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Mosquitto
import GatehouseProtocol
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOSSL
import NIOWebSocket
import ServiceLifecycle

/// Hummingbird's child channel for the gateway's listener: `/v1/connect` WebSocket upgrades are decided
/// by `DeviceAdmission.admit` (so a refusal can be a 401 with a JSON body, which Hummingbird's own WebSocket
/// channel cannot do) and then served by `DeviceFrameHandler` directly on the event loop; every other
/// request goes to the Hummingbird router (`/healthz`, `/readyz`, `/metrics`).
struct GatewayChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case device(DeviceSession)
        /// A live viewer or the status feed (Live/).
        case stream(StreamConnection)
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, Refusal)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let gateway: Gateway

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let gateway = self.gateway
        return channel.eventLoop.makeCompletedFuture {
            // Device messages are small: a 512-byte first read buffer instead of NIO's 2 KiB, which each idle
            // connection keeps for its next read (it grows by itself for a device that sends more).
            try channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: Self.readBuffers)
            // Counted until it becomes a device: connections that never finish cannot use up the file descriptors.
            let pending = gateway.pendingConnections.add(channel)
            let admission = NIOLoopBoundBox<Admission?>(nil, eventLoop: channel.eventLoop)
            let stream = NIOLoopBoundBox<StreamUpgrade?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: Self.maxFrameSize(gateway.settings.now.limits),
                shouldUpgrade: { channel, head in
                    switch gateway.streamUpgrade(head, channel: channel) {
                    case .success(let accepted):
                        stream.value = accepted
                        return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
                    case .failure(let refusal):
                        admission.value = .refuse(refusal)
                        return channel.eventLoop.makeSucceededFuture(nil)
                    case nil:
                        break
                    }
                    let certificate = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
                    let decision = gateway.admission.admit(head, clientCertificate: certificate)
                    admission.value = decision
                    if case .accept(_, let headers, _) = decision {
                        return channel.eventLoop.makeSucceededFuture(headers)
                    }
                    return channel.eventLoop.makeSucceededFuture(nil)
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        if let accepted = stream.value { return .stream(try gateway.install(accepted, on: channel)) }
                        guard case .accept(let claims, _, let compressed) = admission.value else {
                            throw ChannelError.inappropriateOperationForState
                        }
                        let limits = gateway.settings.now.limits
                        let handler = DeviceFrameHandler(gateway.deviceFrames, deflate: compressed ? try PerMessageDeflate() : nil)
                        // Every frame to the device passes the send-queue cap (it sits between the handler and the encoder).
                        try channel.pipeline.syncOperations.addHandler(SendQueueLimit(maxBytes: limits.maxSendQueueBytes, tlsBelow: gateway.deviceTLS != nil))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        gateway.pendingConnections.finished(pending)
                        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
                        let session = gateway.devices.connected(claims: claims, channel: channel, remote: remote)
                        handler.start(session, loop: channel.eventLoop)
                        return .device(session)
                    }
                }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: gateway.deviceTLS != nil))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: .seconds(Int64(gateway.settings.now.limits.handshakeTimeoutSeconds)), logger: logger))
                        try channel.pipeline.syncOperations.addHandler(LiveMJPEGHandler(live: gateway.live))
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if case .refuse(let refusal) = admission.value { return .refused(http, refusal) }
                        return .http(http)
                    }
                }
            )
            if let tls = gateway.deviceTLS {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.current))
            }
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: upgradeConfiguration)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            // A client that has not sent its request within the handshake timeout is dropped (slowloris).
            let timeout = channel.eventLoop.scheduleTask(in: .seconds(Int64(gateway.settings.now.limits.handshakeTimeoutSeconds))) {
                gateway.metrics.limitHit("handshake_timeout")
                channel.close(promise: nil)
            }
            result.whenComplete { _ in timeout.cancel() }
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .http(let http):
                // An MJPEG stream (LiveMJPEGHandler) is a response that never ends by itself.
                await withGracefulShutdownHandler {
                    await handleHTTP(asyncChannel: http, logger: logger)
                } onGracefulShutdown: {
                    value.channel.pipeline.fireUserInboundEventTriggered(LiveMJPEGHandler.Shutdown())
                }
            case .refused(let http, let refusal):
                gateway.metrics.refusedConnection(Int(refusal.status.code))
                try await write(refusal, to: http)
            case .device:
                // Served by its handlers on the event loop from here on: no task waits for it (a waiting task
                // costs about 3 KiB per idle device). `DeviceHub.closeAll` closes devices with 1001 at shutdown.
                return
            case .stream(let stream):
                try await withGracefulShutdownHandler {
                    try await stream.channel.closeFuture.get()
                } onGracefulShutdown: {
                    stream.shutDown()
                }
            }
        } catch {
            logger.debug("connection ended: \(error)")
        }
    }

    private static let readBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)

    private func write(_ refusal: Refusal, to http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>) async throws {
        let body = refusal.body
        try await http.executeThenClose { _, outbound in
            var head = HTTPResponse(
                status: .init(code: Int(refusal.status.code)),
                headerFields: [.contentType: "application/json", .contentLength: String(body.count), .connection: "close"]
            )
            if let seconds = refusal.retryAfter { head.headerFields[.retryAfter] = String(seconds) }
            try await outbound.write(contentsOf: [.head(head), .body(ByteBuffer(bytes: body)), .end(nil)])
        }
    }
}

extension GatewayChannel {
    /// Largest frame the decoder accepts (larger ones get 1009 from NIO's error handler). The headroom
    /// lets a frame just over a limit reach `DeviceFrameHandler`, which applies the exact per-type limits.
    static func maxFrameSize(_ limits: LimitsSection) -> Int { max(limits.maxMessageBytes, limits.maxMediaBytes) + 65536 + 2 }
}
