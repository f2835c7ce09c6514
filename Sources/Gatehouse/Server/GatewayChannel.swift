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

/// Each connection of the gateway's listener (`GatewayListener`): `/v1/connect` WebSocket upgrades are decided
/// by `DeviceAdmission.admit` (so a refusal can be a 401 with a JSON body, which Hummingbird's own WebSocket
/// channel cannot do) and then served by `DeviceFrameHandler` directly on the event loop; every other
/// request goes to the Hummingbird router (`/healthz`, `/readyz`, `/metrics`). A device's plain upgrade takes
/// `DeviceUpgradeFastPath`; the rest, NIO's HTTP pipeline.
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
            // The fast path's refusal, for NIO's pipeline to answer; or the accepted device's claims.
            let admission = NIOLoopBoundBox<Admission?>(nil, eventLoop: channel.eventLoop)
            if let tls = gateway.deviceTLS {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.current))
            }
            let result = channel.eventLoop.makePromise(of: UpgradeResult.self)
            let steps = DeviceUpgradeFastPath<UpgradeResult>.Steps(
                admit: { head, channel in
                    let certificate = Self.clientCertificate(channel, tls: gateway.deviceTLS)
                    let decision = gateway.admission.admit(head, clientCertificate: certificate)
                    admission.value = decision
                    guard case .accept(_, let headers, _) = decision else { return nil }
                    return headers
                },
                upgraded: { channel in
                    try installDevice(on: channel, admission: admission.value, pending: pending, nioUpgrader: false)
                },
                fallBack: { channel in try httpPipeline(on: channel, admission: admission, pending: pending, logger: logger) }
            )
            do {
                try channel.pipeline.syncOperations.addHandler(
                    DeviceUpgradeFastPath(path: DeviceAdmission.connectPath, steps: steps, result: result)
                )
            } catch {
                result.fail(error)
                throw error
            }
            // Until its first request is answered, a connection counts as a handshake, which `PendingConnections`
            // drops after the handshake timeout (slowloris).
            result.futureResult.whenComplete { _ in gateway.pendingConnections.handshakeEnded(pending) }
            return Value(upgradeResult: result.futureResult, channel: channel)
        }
    }

    /// Serves an admitted device on its upgraded channel. With `nioUpgrader`, NIO's upgrader has installed its frame
    /// encoder, decoder and protocol error handler (`DeviceUpgradeFastPath` installs none).
    private func installDevice(
        on channel: any Channel, admission: Admission?, pending: PendingConnections.Ticket, nioUpgrader: Bool
    ) throws -> UpgradeResult {
        guard case .accept(let claims, _, let compressed) = admission else {
            throw ChannelError.inappropriateOperationForState
        }
        let limits = gateway.settings.now.limits
        let handler = DeviceFrameHandler(
            gateway.deviceFrames, maxFrameSize: Self.maxFrameSize(limits), deflate: compressed ? try PerMessageDeflate() : nil)
        // Every frame to the device passes the send-queue cap: below the protocol error handler (whose close frames
        // it encodes), above NIO's frame encoder where NIO's upgrader installed one. Every read passes it too, on its
        // way to the frames (a publish batch per read).
        let output = SendQueueLimit(
            maxBytes: limits.maxSendQueueBytes, tlsBelow: gateway.deviceTLS != nil, nioEncoderBelow: nioUpgrader)
        let pipeline = channel.pipeline.syncOperations
        if nioUpgrader {
            let decoder = try pipeline.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
            try pipeline.addHandler(output, position: .before(decoder))
            try pipeline.addHandler(NIOFrameBytes())
        } else {
            try pipeline.addHandler(output)
        }
        try pipeline.addHandler(handler)
        gateway.pendingConnections.finished(pending)
        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        let session = gateway.devices.connected(claims: claims, channel: channel, output: output, remote: remote)
        handler.start(session, loop: channel.eventLoop)
        // A revocation's sweep closes the sessions attached by then: one admitted before the list changed but attached
        // after the sweep is closed here (the list is read after the attach, the sweep reads the sessions after the list).
        if gateway.admission.isRevoked(claims) { session.close(.policyViolation, reason: .revoked, text: "credential revoked") }
        return .device(session)
    }

    /// NIO's HTTP pipeline with its WebSocket upgrader, for every request the fast path does not upgrade: plain
    /// HTTP (the router, MJPEG streams), live viewers and the status feed, refusals, and unusual device requests.
    private func httpPipeline(on channel: any Channel, admission: NIOLoopBoundBox<Admission?>, pending: PendingConnections.Ticket,
                              logger: Logger) throws -> EventLoopFuture<UpgradeResult> {
        let gateway = self.gateway
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
                // The fast path may have decided already (a refusal): a request is admitted once.
                let decision = admission.value
                    ?? gateway.admission.admit(head, clientCertificate: Self.clientCertificate(channel, tls: gateway.deviceTLS))
                admission.value = decision
                if case .accept(_, let headers, _) = decision {
                    return channel.eventLoop.makeSucceededFuture(headers)
                }
                return channel.eventLoop.makeSucceededFuture(nil)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    if let accepted = stream.value { return .stream(try gateway.install(accepted, on: channel)) }
                    return try installDevice(on: channel, admission: admission.value, pending: pending, nioUpgrader: true)
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
        var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: upgradeConfiguration)
        configuration.enablePipelining = false
        configuration.enableErrorHandling = false
        configuration.enableResponseHeaderValidation = false
        return try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
    }

    /// The device's TLS client certificate, if it sent one. Without TLS there is no handler to ask (a lookup that
    /// fails throws: an allocated error per connection).
    private static func clientCertificate(_ channel: any Channel, tls: DeviceTLS?) -> NIOSSLCertificate? {
        guard tls != nil else { return nil }
        return try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
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
                // Served by its handlers on the event loop: `GatewayListener` gives it no task (a waiting task costs
                // about 3 KiB per idle device). `DeviceHub.closeAll` closes devices with 1001 at shutdown.
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
    /// Largest frame a device may send (larger ones get 1009 from its frame parser). The headroom lets a frame just
    /// over a limit be read whole, so that `DeviceFrameHandler`'s exact per-type limits judge it.
    static func maxFrameSize(_ limits: LimitsSection) -> Int { max(limits.maxMessageBytes, limits.maxMediaBytes) + 65536 + 2 }
}
