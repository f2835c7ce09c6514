import Logging
import Mosquitto
import GatehouseProtocol
import NIOCore
import NIOWebSocket
import Synchronization

/// One live WebSocket connection of a device. What it sends goes through its loop's `LoopFrames`, from any
/// thread, so publish completions on libmosquitto's thread can answer directly.
final class DeviceSession: PublishSource {
    /// The device id from the credential.
    let device: String
    /// `kind` claim of the token, used for meta when the device sends no `hello`.
    let tokenKind: String?
    /// `jti` of the token, checked against the revocation list.
    let tokenID: String?
    /// Increases on every connect of this device (Unix ms, forced above the last one seen).
    let number: Int64
    /// When the connection was accepted (Unix ms).
    let connectedAt: Int64
    /// Peer address, for `devices` listings.
    let remote: String
    let channel: any Channel
    /// Where its frames go, in order, from any thread: shared by every device on its event loop.
    private let frames: LoopFrames
    /// The way out for the frames `LoopFrames` encodes: the connection's send-queue cap. Only used on the channel's
    /// loop (`write(encoded:)`); a plain reference rather than an `NIOLoopBound`, whose event loop would cost every
    /// idle device another 40 bytes.
    nonisolated(unsafe) private let output: SendQueueLimit
    private let metrics: GatewayMetrics
    /// Every reason to stop reading the socket, and the one decision over them (`ReadGate.reads`).
    private let reading = Mutex(ReadGate())
    private let closing = Mutex<OfflineReason?>(nil)
    private let activity: Mutex<Activity>
    /// The telemetry topic, made on the device's first telemetry and kept, so that each message need not build it;
    /// nil (no string, only the field) on a device that has sent none. Only touched on the channel's loop, where the
    /// device's messages are handled.
    nonisolated(unsafe) private var telemetryTopicCache: String?
    /// The storage of the device's last telemetry payload, written over for the next one (`telemetryPayload`). Only
    /// touched on the channel's loop.
    nonisolated(unsafe) private var payloadStorage: [UInt8] = []
    /// Closes the connection when its token expires; cancelled when the connection ends (`DeviceHub.disconnected`), so
    /// that it does not hold the session until then. Only touched on the channel's loop.
    nonisolated(unsafe) var expiryTimer: Scheduled<Void>?
    /// Beyond this capacity the storage is not kept (a device's one large message would stay with it).
    private static let keptPayloadBytes = 1024

    /// What the status page shows of a device's traffic.
    struct Activity: Sendable {
        var messages = 0
        /// Unix ms of the last message (the connect, before the first).
        var lastSeen: Int64
        var rate: RateEstimate
        /// The latest telemetry `data` and its `ts`, for the status page's charts.
        var telemetry: (ts: JSONNumber?, receivedMs: Int64, data: TelemetryData)?
    }

    /// On the channel's event loop.
    init(device: String, tokenKind: String?, tokenID: String?, number: Int64, connectedAt: Int64, remote: String, channel: any Channel,
         output: SendQueueLimit, frames: LoopFrames, metrics: GatewayMetrics) {
        precondition(frames.loop === channel.eventLoop, "a session's frames go through its own loop's LoopFrames")
        self.device = device
        self.tokenKind = tokenKind
        self.tokenID = tokenID
        self.number = number
        self.connectedAt = connectedAt
        self.remote = remote
        self.channel = channel
        self.frames = frames
        self.output = output
        self.metrics = metrics
        self.activity = Mutex(Activity(lastSeen: connectedAt, rate: RateEstimate(nowMs: connectedAt)))
    }

    /// Whether this runs on the channel's loop, for asserts: `channel.eventLoop.assertInEventLoop()` would read the
    /// existential `eventLoop` in release builds too, on the path of every message.
    private var isOnLoop: Bool { channel.eventLoop.inEventLoop }

    /// The device's telemetry topic under `topics`, which must be the same on every call (the hub's); on the channel's
    /// loop.
    func telemetryTopic(_ topics: Topics) -> String {
        assert(isOnLoop)
        if let topic = telemetryTopicCache { return topic }
        let topic = topics.telemetry(device)
        telemetryTopicCache = topic
        return topic
    }

    /// A telemetry payload `write` makes over the storage of the device's last one, on the channel's loop. Once
    /// the MQTT client copied that one and nothing else holds it (a QoS 0 message handed over at once), the storage
    /// is written in place: one allocation fewer per message. Still held (a message waiting in the outbox), it
    /// is left alone and new storage made.
    func telemetryPayload(_ write: (inout [UInt8]) -> Void) -> [UInt8] {
        assert(isOnLoop)
        write(&payloadStorage)
        let payload = payloadStorage
        if payloadStorage.capacity > Self.keptPayloadBytes { payloadStorage = [] }
        return payload
    }

    /// Counts one message from the device.
    func noteMessage(nowMs: Int64) {
        activity.withLock {
            $0.messages += 1
            $0.lastSeen = nowMs
        }
    }

    /// Keeps the latest telemetry for the status page.
    /// (`ts` is the device's, if it gave one; else the time of receipt stands for it.)
    func noteTelemetry(_ data: TelemetryData, ts: JSONNumber?, receivedMs: Int64) {
        activity.withLock { $0.telemetry = (ts, receivedMs, data) }
    }

    /// The latest telemetry, if any arrived on this connection.
    var latestTelemetry: (ts: JSONNumber, data: TelemetryData)? {
        activity.withLock { $0.telemetry }.map { ($0.ts ?? JSONNumber($0.receivedMs), $0.data) }
    }

    /// Messages so far, the last one's time, and messages per second lately.
    func readActivity(nowMs: Int64) -> (messages: Int, lastSeen: Int64, perSecond: Double) {
        activity.withLock { ($0.messages, $0.lastSeen, $0.rate.update(count: $0.messages, nowMs: nowMs)) }
    }

    /// Sends one gateway message as a text frame.
    func send(_ message: GatewayMessage) {
        sendText(message.encoded())
    }

    /// Sends prepared UTF-8 JSON as a text frame. Always queued (`LoopFrames`), also from the loop itself, so
    /// frames leave in the order they were sent from any thread (acks stay in order).
    func sendText(_ bytes: [UInt8]) {
        frames.send(text: bytes, to: self)
    }

    /// `LoopFrames` writes frames it encoded (on the loop), and they leave at once.
    func write(encoded frames: ByteBuffer) {
        assert(isOnLoop)
        output.write(encoded: frames)
        channel.flush()
    }

    /// Answers a device message's `seq` with the outcome of its publish: `ack` when it is safe, else `nack`
    /// with the code. The one place where an outcome becomes an answer (and is counted).
    func answer(seq: UInt64, _ outcome: PublishOutcome) {
        switch outcome {
        case .safe:
            metrics.acked()
            frames.sendAck(seq, to: self)
        case .refused(let code, let message):
            metrics.nacked(code)
            send(.nack(seq: seq, code: code.rawValue, message: message))
        }
    }

    /// Backpressure from the outbox. Decisions may arrive out of order from several threads: the one with
    /// the highest `order` is recorded, and each task on the event loop applies whatever is recorded then.
    func setReadingPaused(_ paused: Bool, order: UInt64) {
        if reading.withLock({ $0.outbox(paused: paused, order: order) }) { applyReading() }
    }

    /// Backpressure from the device: its channel's writability changed (the frame handler tells, on the loop).
    func setWritable(_ writable: Bool) {
        reading.withLock { $0.writable(writable) }
        applyReading()
    }

    /// Sets NIO's `autoRead` to what `ReadGate` decides now, on the event loop (turning it back on also issues
    /// the next read).
    private func applyReading() {
        let channel = self.channel
        channel.eventLoop.execute { [self] in
            channel.setOption(ChannelOptions.autoRead, value: reading.withLock { $0.reads }).whenFailure { _ in }
        }
    }

    /// True while the outbox holds this device back: not reading it then is the gateway's doing, so its silence
    /// (pongs included) is not held against it. A device that does not read its socket gets no such excuse.
    var isReadingPaused: Bool { reading.withLock { $0.heldByOutbox } }

    /// The reason recorded by the first `close`, if any.
    var closeReason: OfflineReason? { closing.withLock { $0 } }

    /// Closes with a WebSocket close code; the first reason given is the one published as availability.
    func close(_ code: CloseCode, reason: OfflineReason, text: String? = nil) {
        close(code: code.rawValue, reason: reason, text: text)
    }

    /// Closes with any WebSocket close code (1002 protocol errors are not in `CloseCode`).
    func close(code: UInt16, reason: OfflineReason, text: String? = nil) {
        let first = closing.withLock { current -> Bool in
            guard current == nil else { return false }
            current = reason
            return true
        }
        guard first else { return }
        var buffer = channel.allocator.buffer(capacity: 2 + (text?.utf8.count ?? 0))
        buffer.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: Int(code)))
        if let text { buffer.writeString(text) }
        // The closing handshake (RFC 6455 7.1.1): the socket is read (and what arrives discarded) until the peer's
        // close frame, on which the frame handler closes the connection. Closing at once, with the peer's messages
        // still unread, would make the kernel reset the connection, and the peer could lose our close frame. A
        // peer that does not answer within two seconds of our close frame leaving is closed then; one that reads
        // so little that our close frame does not leave at all, after ten.
        reading.withLock { $0.startClosing() }
        applyReading()
        let channel = self.channel
        // Queued like `sendText`, so answers sent before the close still leave before it.
        frames.run { [buffer] in
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)).whenComplete { _ in
                channel.eventLoop.scheduleTask(in: Self.closeHandshakeTimeout) { channel.close(promise: nil) }
            }
        }
        channel.eventLoop.scheduleTask(in: Self.closeFrameTimeout) { channel.close(promise: nil) }
    }

    /// How long the gateway waits for the device's close frame after its own has left.
    static let closeHandshakeTimeout = TimeAmount.seconds(2)
    /// How long a close frame may wait behind what the device has not read yet.
    static let closeFrameTimeout = TimeAmount.seconds(10)

    /// True once our close frame was sent: the connection only waits for the peer's close frame now.
    var isClosing: Bool { reading.withLock { $0.closing } }

    /// Ends the connection at once, without a close frame (one that could not reach the device anyway: it does
    /// not answer, or reads nothing); `reason` is published unless another was recorded first.
    func drop(_ reason: OfflineReason) {
        noteEnded(reason)
        channel.close(promise: nil)
    }

    /// Records a reason for a connection that ended without our close frame (peer close, lost link).
    func noteEnded(_ reason: OfflineReason) {
        closing.withLock { current in
            if current == nil { current = reason }
        }
    }
}
