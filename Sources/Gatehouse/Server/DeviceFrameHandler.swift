import Logging
import Mosquitto
import GatehouseProtocol
import NIOCore
import NIOWebSocket

/// Reads one device's WebSocket frames on its event loop: cuts them from the bytes read (``InboundFrameParser``),
/// reassembles fragments, enforces size and UTF-8 rules, answers pings (rate-limited, at most one pong waiting), runs
/// the heartbeat, counts bad messages, tells the session when the device stops reading (writability), and hands each
/// well-formed message to its sink (`DeviceHub`). One instance per connection; no locks (everything runs on one loop);
/// the live settings are a per-connection snapshot, refreshed only after a reload.
final class DeviceFrameHandler: ChannelInboundHandler, RemovableChannelHandler, HeartbeatMember {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    /// What every device's handler shares, in one object: each idle device keeps its handler.
    final class Environment: Sendable {
        let sink: any DeviceMessageSink
        let store: SettingsStore
        let metrics: GatewayMetrics
        let logger: Logger
        /// Each event loop's heartbeats, a period of `gateway.heartbeat_s`.
        let heartbeats: PerEventLoop<NIOLoopBound<HeartbeatWheel>>

        init(sink: any DeviceMessageSink, settings: SettingsStore, metrics: GatewayMetrics, logger: Logger, heartbeatSeconds: Int) {
            self.sink = sink
            self.store = settings
            self.metrics = metrics
            self.logger = logger
            let period = TimeAmount.seconds(Int64(heartbeatSeconds))
            heartbeats = PerEventLoop { loop in NIOLoopBound(HeartbeatWheel(period: period, loop: loop), eventLoop: loop) }
        }
    }

    private let environment: Environment
    private var settings: LiveSettings
    private let deflate: PerMessageDeflate?
    private var session: DeviceSession?
    private var parser: InboundFrameParser
    /// The device sent its close frame.
    private var peerClosed = false
    /// When the read being handled arrived, on both clocks: read once per read, not per message (every frame of a
    /// read arrived together; on the telemetry flow the clock was three reads per message).
    private var readAt = (wallMs: Int64(0), uptimeNanos: UInt64(0))
    private var fragments: (opcode: WebSocketOpcode, compressed: Bool, data: ByteBuffer)?
    /// Its loop's heartbeats, once started.
    private var heartbeats: HeartbeatWheel?
    var heartbeatPosition: HeartbeatWheel.Position?
    /// A frame other than a ping came since the last heartbeat.
    private var heard = false
    /// Heartbeats in a row that found nothing heard since the one before.
    private var silentBeats: UInt8 = 0
    private var badMessageTimes: [NIODeadline] = []
    /// Per-device rates (`limits.max_messages_per_s`, `limits.max_bytes_per_s`), for this connection.
    private var messageRate: TokenBucket
    private var byteRate: TokenBucket
    /// Pings and pongs from the device (`limits.max_control_frames_per_s`).
    private var controlRate: TokenBucket
    /// A pong waits to be written: pings meanwhile are answered by one pong for the newest (`nextPong`).
    private var pongWaiting = false
    private var nextPong: ByteBuffer?
    /// Size limits as announced in this connection's `welcome` (and built into its frame decoder): a reload
    /// changes them for new connections only.
    private let sizeLimits: (text: Int, media: Int)

    init(_ environment: Environment, maxFrameSize: Int, deflate: PerMessageDeflate?) {
        self.environment = environment
        self.parser = InboundFrameParser(maxFrameSize: maxFrameSize)
        self.settings = environment.store.now
        self.deflate = deflate
        let limits = self.settings.limits
        let now = NIODeadline.now().uptimeNanoseconds
        messageRate = TokenBucket(perSecond: limits.maxMessagesPerSecond, nowNanos: now)
        byteRate = TokenBucket(perSecond: limits.maxBytesPerSecond, nowNanos: now)
        controlRate = TokenBucket(perSecond: limits.maxControlFramesPerSecond, nowNanos: now)
        sizeLimits = (limits.maxMessageBytes, limits.maxMediaBytes)
    }

    /// Binds the session once the gateway accepted it, and starts the heartbeat.
    func start(_ session: DeviceSession, loop: any EventLoop) {
        self.session = session
        let heartbeats = environment.heartbeats[loop].value
        heartbeats.add(self)
        self.heartbeats = heartbeats
    }

    /// The bytes the frame parser keeps between reads (for tests).
    var heldBytes: Int { parser.heldCapacity }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After the device's close frame its bytes are dropped unread: kept, a device that goes on sending while our
        // answer cannot leave (it reads nothing) would grow them until the heartbeat ends the connection.
        guard !peerClosed else { return }
        parser.append(unwrapInboundIn(data))
        readAt = (nowMs(), NIODeadline.now().uptimeNanoseconds)
        // Nothing after the device's close frame is handled (RFC 6455 5.5.1: it sends no more data after it).
        while !peerClosed, let step = parser.next() {
            switch step {
            case .frame(let frame): receive(frame, context: context)
            case .refused(let refusal): refuse(refusal)
            }
        }
    }

    /// Closes for a frame the parser refused, with the codes NIO's protocol error handler used: 1009 for one over the
    /// frame size, 1002 for a broken control frame. The parser skips the frame's bytes, so the device's answer to our
    /// close frame is read and ends the connection.
    private func refuse(_ refusal: InboundFrameParser.Refusal) {
        switch refusal {
        case .tooLong:
            session?.close(.messageTooBig, reason: .messageTooBig, text: "frame over \(parser.maxFrameSize) bytes")
        case .fragmentedControlFrame, .longControlFrame:
            session?.close(code: 1002, reason: .badMessages, text: "control frames must be whole and at most 125 bytes")
        }
    }

    private func receive(_ frame: InboundFrame, context: ChannelHandlerContext) {
        guard let session else { return }
        // A ping is not an answer: a device that pings without reading what it is sent must not look alive.
        if frame.opcode != .ping { heard = true }
        if session.isClosing {
            // We sent our close frame: only the peer's answer matters now; what it sent meanwhile is not handled.
            if frame.opcode == .connectionClose {
                peerClosed = true
                context.close(promise: nil)
            }
            return
        }
        guard frame.rsv2 == false, frame.rsv3 == false, !frame.rsv1 || (deflate != nil && frame.opcode.isDataStart) else {
            return session.close(code: 1002, reason: .badMessages, text: "reserved bits set")
        }
        guard frame.maskKey != nil else {
            return session.close(code: 1002, reason: .badMessages, text: "client frames must be masked")
        }
        switch frame.opcode {
        case .ping, .pong:
            guard frame.fin, frame.length <= 125 else { return session.close(code: 1002, reason: .badMessages) }
            guard withinControlRate() else {
                environment.metrics.limitHit("control_frames")
                return countBadMessage(session: session)
            }
            if frame.opcode == .ping { answerPing(frame.unmaskedPayload(allocator: context.channel.allocator), context: context) }
        case .connectionClose:
            peerClosed = true
            session.noteEnded(.disconnected)
            context.answerClose(unmaskedPayload: frame.unmaskedPayload(allocator: context.channel.allocator))
        case .text, .binary:
            guard fragments == nil else { return session.close(code: 1002, reason: .badMessages, text: "new message inside a fragmented one") }
            if frame.fin, frame.opcode == .text, !frame.rsv1, frame.length <= sizeLimits.text {
                // The common case, read straight from the unmasked bytes (on the stack when small): nothing of them
                // is kept. A message over the limit takes the other way, to be refused without that copy.
                frame.withUnmaskedPayload { text in
                    begin(session)
                    let withinRate = withinRates(bytes: text.count, limits: settings.limits)
                    receiveText(text, wireBytes: text.count, withinRate: withinRate, session: session)
                }
            } else if frame.fin {
                receive(frame.opcode, compressed: frame.rsv1, frame.unmaskedPayload(allocator: context.channel.allocator), session: session)
            } else {
                fragments = (frame.opcode, frame.rsv1, frame.unmaskedPayload(allocator: context.channel.allocator))
                checkSize(session: session)
            }
        case .continuation:
            guard var assembled = fragments else { return session.close(code: 1002, reason: .badMessages, text: "continuation without a message") }
            fragments = nil
            var piece = frame.unmaskedPayload(allocator: context.channel.allocator)
            assembled.data.writeBuffer(&piece)
            fragments = assembled
            guard checkSize(session: session) else { return }
            if frame.fin {
                fragments = nil
                receive(assembled.opcode, compressed: assembled.compressed, assembled.data, session: session)
            }
        default:
            session.close(code: 1002, reason: .badMessages, text: "unknown opcode")
        }
    }

    /// Pongs go out one at a time: a ping that arrives while a pong still waits to be written is answered once
    /// that one is out, and only the newest of such pings is (RFC 6455 5.5.3 allows answering just the most
    /// recent ping). So a device that pings without reading cannot pile up pongs.
    private func answerPing(_ data: ByteBuffer, context: ChannelHandlerContext) {
        guard !pongWaiting else {
            nextPong = data
            return
        }
        pongWaiting = true
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let bound = context.loopBound
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: data))).whenComplete { _ in
            let handler = handler.value
            handler.pongWaiting = false
            guard let next = handler.nextPong else { return }
            handler.nextPong = nil
            handler.answerPing(next, context: bound.value)
        }
    }

    /// Takes one control frame from the device's bucket; false when over `limits.max_control_frames_per_s`.
    private func withinControlRate() -> Bool {
        settings = environment.store.refresh(settings)
        let perSecond = settings.limits.maxControlFramesPerSecond
        let now = readAt.uptimeNanos
        if controlRate.rate != Double(perSecond) { controlRate = TokenBucket(perSecond: perSecond, nowNanos: now) }
        return controlRate.take(nowNanos: now)
    }

    /// Closes with 1009 when a (partial) message is over its limit; returns whether it is still fine.
    @discardableResult
    private func checkSize(session: DeviceSession) -> Bool {
        guard let fragments else { return true }
        let limit = fragments.opcode == .text ? sizeLimits.text : sizeLimits.media
        guard fragments.data.readableBytes > limit else { return true }
        self.fragments = nil
        session.close(.messageTooBig, reason: .messageTooBig, text: "message over \(limit) bytes")
        return false
    }

    /// A whole message arrived: the live settings are refreshed, and the device's activity counts it.
    private func begin(_ session: DeviceSession) {
        settings = environment.store.refresh(settings)
        session.noteMessage(nowMs: readAt.wallMs)
    }

    /// A whole message that was fragmented or compressed, assembled in `wire`; or a binary one.
    private func receive(_ opcode: WebSocketOpcode, compressed: Bool, _ wire: ByteBuffer, session: DeviceSession) {
        begin(session)
        var data = wire
        if compressed, let deflate {
            let limit = opcode == .text ? sizeLimits.text : sizeLimits.media
            do {
                data = try deflate.inflate(wire, maxSize: limit, allocator: session.channel.allocator)
            } catch {
                switch error {
                case .tooBig: return session.close(.messageTooBig, reason: .messageTooBig, text: "inflated message over \(limit) bytes")
                case .corrupt: return session.close(code: 1007, reason: .badMessages, text: "the compressed message does not inflate")
                }
            }
        }
        let withinRate = withinRates(bytes: data.readableBytes, limits: settings.limits)
        if opcode == .text {
            data.withUnsafeReadableBytes { receiveText($0, wireBytes: wire.readableBytes, withinRate: withinRate, session: session) }
        } else {
            receiveMedia(data, wireBytes: wire.readableBytes, withinRate: withinRate, session: session)
        }
    }

    /// A whole text message (`wireBytes` long as it arrived, before inflating).
    private func receiveText(_ text: UnsafeRawBufferPointer, wireBytes: Int, withinRate: Bool, session: DeviceSession) {
        guard text.count <= sizeLimits.text else {
            return session.close(.messageTooBig, reason: .messageTooBig, text: "text message over \(sizeLimits.text) bytes")
        }
        // Parsed JSON is valid UTF-8 (the parser checks strings and allows no other non-ASCII byte), so the text is
        // checked on its own (1007 rather than bad_message) only when it did not parse.
        let parsed = DeviceMessage.parse(text)
        if case .failure = parsed, String(validating: text.bindMemory(to: UInt8.self), as: UTF8.self) == nil {
            environment.metrics.receivedBytes(wireBytes, type: .invalid)
            return session.close(.invalidUTF8, reason: .invalidUTF8, text: "text frame is not valid UTF-8")
        }
        let type: GatewayMetrics.InType = if case .success(let message) = parsed { .init(message.body) } else { .invalid }
        environment.metrics.receivedBytes(wireBytes, type: type)
        switch parsed {
        case .success(let message) where !withinRate:
            refuseOverRate(seq: message.seq, session: session)
        case .success(let message):
            if let refusal = environment.sink.handle(message, from: session, settings: settings, nowMs: readAt.wallMs) {
                rejected(refusal, session: session)
            }
        case .failure(let error):
            rejected(error, session: session)
        }
    }

    /// A whole binary message: a media frame.
    private func receiveMedia(_ data: ByteBuffer, wireBytes: Int, withinRate: Bool, session: DeviceSession) {
        guard data.readableBytes <= sizeLimits.media else {
            return session.close(.messageTooBig, reason: .messageTooBig, text: "binary message over \(sizeLimits.media) bytes")
        }
        let parsed = data.withUnsafeReadableBytes { MediaFrame.parseHeader($0) }
        environment.metrics.receivedBytes(wireBytes, type: (try? parsed.get()) == nil ? .invalid : .media)
        guard withinRate else { return refuseOverRate(seq: nil, session: session) }
        switch parsed {
        case .success(let (header, offset)):
            environment.sink.handleMedia(header: header, payload: data.getSlice(at: data.readerIndex + offset, length: data.readableBytes - offset)!, from: session)
        case .failure(let error):
            rejected(error, session: session)
        }
    }

    /// Takes one message of `bytes` from the device's rate buckets; false when over either rate. Rates
    /// changed by a reload apply from the next message on.
    private func withinRates(bytes: Int, limits: LimitsSection) -> Bool {
        let now = readAt.uptimeNanos
        if messageRate.rate != Double(limits.maxMessagesPerSecond) { messageRate = TokenBucket(perSecond: limits.maxMessagesPerSecond, nowNanos: now) }
        if byteRate.rate != Double(limits.maxBytesPerSecond) { byteRate = TokenBucket(perSecond: limits.maxBytesPerSecond, nowNanos: now) }
        return messageRate.take(nowNanos: now) && byteRate.take(Double(bytes), nowNanos: now)
    }

    /// Over `limits.max_messages_per_s` or `max_bytes_per_s`: the message is not published; `nack`
    /// `rate_limited` when it has a `seq` (the device resends later), else an `error` frame. Refusals count
    /// toward the bad-message window, so a device that ignores them is closed (1008) instead of being
    /// answered without end.
    private func refuseOverRate(seq: UInt64?, session: DeviceSession) {
        environment.metrics.limitHit("rate")
        defer { countBadMessage(session: session) }
        let limits = settings.limits
        let message = "over the rate limit (\(limits.maxMessagesPerSecond) messages or \(limits.maxBytesPerSecond) bytes per second); slow down"
        if let seq {
            session.answer(seq: seq, .refused(.rateLimited, message))
        } else {
            session.send(.error(code: NackCode.rateLimited.rawValue, message: message))
        }
    }

    /// A malformed message: `nack` its readable `seq`, else an `error` frame; too many in 60 s closes with 1008.
    private func rejected(_ error: BadMessageError, session: DeviceSession) {
        environment.metrics.badMessage()
        environment.logger.debug("bad message: \(error.message)", metadata: ["device": "\(session.device)"])
        if let seq = error.seq {
            session.answer(seq: seq, .refused(.badMessage, error.message))
        } else {
            session.send(.error(code: NackCode.badMessage.rawValue, message: error.message))
        }
        countBadMessage(session: session)
    }

    /// More than `limits.max_bad_messages` within 60 s closes the connection with 1008.
    private func countBadMessage(session: DeviceSession) {
        let now = NIODeadline.now()
        badMessageTimes.append(now)
        badMessageTimes.removeAll { now - $0 > .seconds(60) }
        if badMessageTimes.count > settings.limits.maxBadMessages {
            session.close(.policyViolation, reason: .badMessages, text: "too many bad or over-rate messages")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO's decoder, on NIO's upgrade path (its protocol error handler sends the close frame).
        if let error = error as? NIOWebSocketError, error == .invalidFrameLength {
            session?.noteEnded(.messageTooBig)
        }
        context.fireErrorCaught(error)
    }

    /// The server allows half-closure (for HTTP); a device whose input ended is gone. A device whose send queue
    /// overflowed (`SendQueueLimit`) reads nothing of what it is sent: it is dropped like one that stopped
    /// answering pings (a close frame would only queue behind what it does not read).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            session?.noteEnded(.connectionLost)
            context.close(promise: nil)
        } else if let overflow = event as? SendQueueLimit.Overflow, let session {
            environment.metrics.limitHit("send_queue")
            environment.logger.info("dropped: the device reads nothing, \(overflow.queuedBytes) bytes wait to be sent to it", metadata: ["device": "\(session.device)"])
            session.drop(.heartbeatTimeout)
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Once every `heartbeat_s` (``HeartbeatWheel``): pings the device, or drops it when two heartbeats in a row
    /// found that nothing was heard from it since the one before (no answer for two periods).
    func heartbeat() {
        guard let session else { return }
        // A device held back by the outbox is not read, pongs included: it is not silent.
        silentBeats = heard || session.isReadingPaused ? 0 : min(silentBeats + 1, 2)
        heard = false
        if silentBeats >= 2 { return session.drop(.heartbeatTimeout) }
        let ping = session.channel.allocator.buffer(string: "hb")
        session.channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: ping), promise: nil)
    }

    /// A device that does not read what it is sent (NIO's write buffer is over its high-water mark) is not read
    /// either until it catches up: otherwise every message it sends adds an answer to the pile.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        session?.setWritable(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeats?.remove(self)
        if let session {
            session.noteEnded(.connectionLost)
            environment.metrics.closed(session.closeReason ?? .connectionLost)
            environment.sink.disconnected(session)
        }
        context.fireChannelInactive()
    }
}

extension WebSocketOpcode {
    /// The first frame of a message, the only one that may carry RSV1 (compressed).
    fileprivate var isDataStart: Bool { self == .text || self == .binary }
}
