import GatehouseProtocol
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import Gatehouse

/// The frame handler on an `EmbeddedChannel`: fragments, reserved bits, masks, UTF-8, sizes, rates,
/// pings and bad messages, each with its close code or answer, no sockets involved.
@Suite struct DeviceFrameHandlerTests {
    /// Records what the handler hands on.
    final class Sink: DeviceMessageSink {
        let messages = Mutex<[DeviceMessage]>([])
        let media = Mutex(0)
        let ended = Mutex(false)
        func handle(_ message: DeviceMessage, from session: DeviceSession, settings: LiveSettings, nowMs: Int64) -> BadMessageError? {
            messages.withLock { $0.append(message) }
            return nil
        }
        func handleMedia(header: MediaHeader, payload: ByteBuffer, from session: DeviceSession) { media.withLock { $0 += 1 } }
        func disconnected(_ session: DeviceSession) { ended.withLock { $0 = true } }
    }

    /// Keeps every write unwritten, as a socket whose peer reads nothing.
    final class HoldWrites: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        private(set) var held: [EventLoopPromise<Void>?] = []
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) { held.append(promise) }
        func flush(context: ChannelHandlerContext) {}
    }

    let channel = EmbeddedChannel()
    let sink = Sink()
    let session: DeviceSession
    let handler: DeviceFrameHandler
    let mask = WebSocketMaskingKey([1, 2, 3, 4] as [UInt8])!

    init() throws {
        try self.init(limits: "")
    }

    init(limits yaml: String, holdingWrites: Bool = false, deflate: Bool = false) throws {
        let config = GatewayConfig(source: ConfigSource(yamlText: yaml, environment: [:]))
        if holdingWrites { try channel.pipeline.syncOperations.addHandler(HoldWrites()) }
        handler = DeviceFrameHandler(
            .init(sink: sink, settings: SettingsStore(config), metrics: GatewayMetrics(), logger: Logger(label: "test"), heartbeatSeconds: 30),
            maxFrameSize: GatewayChannel.maxFrameSize(config.limits), deflate: deflate ? try PerMessageDeflate() : nil)
        let output = try channel.addDeviceOutput()
        try channel.pipeline.syncOperations.addHandler(handler)
        session = DeviceSession(
            device: "dev-1", tokenKind: nil, tokenID: nil, number: 1, connectedAt: 0, remote: "test", channel: channel,
            output: output, frames: LoopFrames(loop: channel.eventLoop), metrics: GatewayMetrics())
        handler.start(session, loop: channel.eventLoop)
    }

    /// A frame as a device sends it: its bytes on the wire.
    func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, masked: Bool = true, rsv1: Bool = false, rsv2: Bool = false) -> ByteBuffer {
        var data = ByteBuffer(bytes: bytes)
        if masked { data.webSocketMask(mask) }
        let frame = WebSocketFrame(fin: fin, rsv1: rsv1, rsv2: rsv2, opcode: opcode, maskKey: masked ? mask : nil, data: data)
        return NIOFrameBytes.bytes(of: frame, allocator: channel.allocator)
    }

    func text(_ string: String, fin: Bool = true) -> ByteBuffer { frame(.text, Array(string.utf8), fin: fin) }

    /// Everything written to the device so far.
    func written() throws -> [WebSocketFrame] {
        channel.embeddedEventLoop.run()
        return try channel.readOutboundFrames()
    }

    func closeCode() throws -> UInt16? {
        guard var data = try written().last(where: { $0.opcode == .connectionClose })?.data else { return nil }
        return data.readInteger(as: UInt16.self)
    }

    func texts() throws -> [String] {
        try written().filter { $0.opcode == .text }.map { String(buffer: $0.data) }
    }

    @Test func aWellFormedMessageReachesTheSink() throws {
        try channel.writeInbound(text(#"{"type":"telemetry","seq":7,"data":{"t":1}}"#))
        #expect(sink.messages.withLock { $0.map(\.seq) } == [7])
    }

    @Test func fragmentsAreReassembled() throws {
        try channel.writeInbound(text(#"{"type":"telemetry","#, fin: false))
        try channel.writeInbound(frame(.continuation, Array(#""seq":1,"data":{}}"#.utf8)))
        #expect(sink.messages.withLock { $0.count } == 1)
        #expect(try closeCode() == nil)
    }

    @Test func aContinuationWithoutAStartIsAProtocolError() throws {
        try channel.writeInbound(frame(.continuation, Array("x".utf8)))
        #expect(try closeCode() == 1002)
    }

    @Test func aNewMessageInsideAFragmentedOneIsAProtocolError() throws {
        try channel.writeInbound(text("{", fin: false))
        try channel.writeInbound(text("{}"))
        #expect(try closeCode() == 1002)
    }

    @Test func reservedBitsWithoutAnExtensionAreAProtocolError() throws {
        try channel.writeInbound(frame(.text, Array("{}".utf8), rsv2: true))
        #expect(try closeCode() == 1002)
    }

    @Test func compressedFramesWithoutNegotiationAreAProtocolError() throws {
        try channel.writeInbound(frame(.text, Array("{}".utf8), rsv1: true))
        #expect(try closeCode() == 1002)
    }

    @Test func unmaskedFramesAreAProtocolError() throws {
        try channel.writeInbound(frame(.text, Array("{}".utf8), masked: false))
        #expect(try closeCode() == 1002)
        #expect(sink.messages.withLock { $0.isEmpty })
    }

    /// The same check on a message assembled from fragments (it takes the other way through the handler).
    @Test func invalidUTF8InFragmentsCloses1007() throws {
        try channel.writeInbound(frame(.text, [0x7B, 0xC3], fin: false))
        try channel.writeInbound(frame(.continuation, [0x28, 0x7D]))
        #expect(try closeCode() == 1007)
        #expect(sink.messages.withLock { $0.isEmpty })
    }

    @Test func invalidUTF8Closes1007() throws {
        try channel.writeInbound(frame(.text, [0x7B, 0xC3, 0x28, 0x7D]))
        #expect(try closeCode() == 1007)
    }

    @Test func aTooBigMessageCloses1009() throws {
        let big = #"{"type":"telemetry","data":{"k":""# + String(repeating: "x", count: 70_000) + #""}}"#
        try channel.writeInbound(text(big))
        #expect(try closeCode() == 1009)
    }

    /// A frame over the frame size (the larger limit and 64 KiB) is refused from its header, with 1009, and skipped as
    /// its payload arrives: the device's answer to our close frame, right behind it, ends the connection.
    @Test func aFrameOverTheFrameSizeCloses1009AndIsSkipped() throws {
        let small = try DeviceFrameHandlerTests(limits: "limits: {max_message_bytes: 1024, max_media_bytes: 1024}")
        var wire = small.frame(.binary, [UInt8](repeating: 7, count: 70_000))
        try small.channel.writeInbound(wire.readSlice(length: 1_000)!)
        #expect(try small.closeCode() == 1009)
        #expect(small.session.closeReason == .messageTooBig && small.session.isClosing)
        var answer = small.frame(.connectionClose, [0x03, 0xF1])
        wire.writeBuffer(&answer)
        try small.channel.writeInbound(wire)
        #expect(small.sink.ended.withLock { $0 } && small.sink.media.withLock { $0 } == 0)
    }

    /// RFC 6455 5.5.1: nothing comes after an endpoint's close frame; a message behind it in the same read is not handled.
    @Test func nothingAfterTheDevicesCloseFrameIsHandled() throws {
        var read = frame(.connectionClose, [0x03, 0xE8])
        var behind = text(#"{"type":"telemetry","seq":9,"data":{}}"#)
        read.writeBuffer(&behind)
        try channel.writeInbound(read)
        #expect(sink.messages.withLock { $0.isEmpty })
        #expect(try closeCode() == 1000)
    }

    /// Bytes a device sends after its close frame, while our answer cannot leave (it reads nothing), are dropped, not
    /// kept until the heartbeat ends the connection.
    @Test func bytesAfterTheDevicesCloseFrameAreNotKept() throws {
        let held = try DeviceFrameHandlerTests(limits: "", holdingWrites: true)
        try held.channel.writeInbound(held.frame(.connectionClose, [0x03, 0xE8]))
        // The start of a long frame, then 4 MiB more of it.
        try held.channel.writeInbound(held.frame(.binary, [UInt8](repeating: 7, count: 16_384)).getSlice(at: 0, length: 8_192)!)
        for _ in 0..<256 { try held.channel.writeInbound(ByteBuffer(repeating: 7, count: 16_384)) }
        #expect(held.handler.heldBytes == 0)
    }

    /// A compressed message whose bytes are no deflate stream is invalid data (1007), not a message too big (1009).
    @Test func aCompressedMessageThatDoesNotInflateCloses1007() throws {
        let compressed = try DeviceFrameHandlerTests(limits: "", deflate: true)
        try compressed.channel.writeInbound(compressed.frame(.text, [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01], rsv1: true))
        #expect(try compressed.closeCode() == 1007)
    }

    @Test func fragmentsOverTheLimitClose1009BeforeTheEnd() throws {
        let piece = String(repeating: "x", count: 40_000)
        try channel.writeInbound(text(piece, fin: false))
        #expect(try closeCode() == nil)
        try channel.writeInbound(frame(.continuation, Array(piece.utf8), fin: false))
        #expect(try closeCode() == 1009)
    }

    @Test func pingsAreAnsweredWithTheSamePayload() throws {
        try channel.writeInbound(frame(.ping, Array("hb".utf8)))
        let pong = try #require(try written().first { $0.opcode == .pong })
        #expect(String(buffer: pong.data) == "hb")
    }

    @Test func aBadMessageWithASeqIsNacked() throws {
        try channel.writeInbound(text(#"{"type":"nonsense","seq":3}"#))
        let answer = try #require(try texts().first)
        #expect(answer.contains(#""type":"nack""#) && answer.contains(#""seq":3"#) && answer.contains("bad_message"))
    }

    @Test func overTheRateMessagesAreNackedRateLimited() throws {
        let limited = try DeviceFrameHandlerTests(limits: "limits: {max_messages_per_s: 1}")
        for seq in 1...4 { try limited.channel.writeInbound(limited.text(#"{"type":"telemetry","seq":\#(seq),"data":{}}"#)) }
        // A burst of two seconds' worth passes; the rest is refused and not handed on.
        #expect(limited.sink.messages.withLock { $0.map(\.seq) } == [1, 2])
        let nacks = try limited.texts().filter { $0.contains("rate_limited") }
        #expect(nacks.count == 2)
    }

    @Test func tooManyBadMessagesClose1008() throws {
        let strict = try DeviceFrameHandlerTests(limits: "limits: {max_bad_messages: 2}")
        for _ in 0..<3 { try strict.channel.writeInbound(strict.text("not json")) }
        #expect(try strict.closeCode() == 1008)
    }

    @Test func backpressurePausesAndResumesReading() throws {
        session.setReadingPaused(true, order: 1)
        channel.embeddedEventLoop.run()
        #expect(autoRead() == false && session.isReadingPaused)
        // Decisions delivered out of order: the latest decision (order 3) wins, not the last call.
        session.setReadingPaused(false, order: 3)
        session.setReadingPaused(true, order: 2)
        channel.embeddedEventLoop.run()
        #expect(autoRead() == true && !session.isReadingPaused)
    }

    @Test func pingsOverTheControlRateAreNotAnsweredAndCountAsBad() throws {
        let strict = try DeviceFrameHandlerTests(limits: "limits: {max_control_frames_per_s: 1, max_bad_messages: 2}")
        for _ in 0..<5 { try strict.channel.writeInbound(strict.frame(.ping, Array("p".utf8))) }
        let frames = try strict.written()
        // A burst of two seconds' worth is answered; the third over-rate ping is one bad frame too many.
        #expect(frames.filter { $0.opcode == .pong }.count == 2)
        #expect(frames.last?.opcode == .connectionClose && strict.session.closeReason == .badMessages)
    }

    @Test func aDeviceThatDoesNotReadIsNotReadUntilItCatchesUp() throws {
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.run()
        #expect(autoRead() == false && !session.isReadingPaused)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.run()
        #expect(autoRead() == true)
    }

    @Test func closingReadsAgainToWaitForThePeersCloseFrame() throws {
        session.setReadingPaused(true, order: 1)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        session.close(.policyViolation, reason: .badMessages)
        channel.embeddedEventLoop.run()
        #expect(autoRead() == true && session.isClosing)
    }

    /// The heartbeat (30 s here) on the embedded loop's clock. (The channel never was active: the close reason tells.)
    func advance(seconds: Int64) { channel.embeddedEventLoop.advanceTime(by: .seconds(seconds)) }

    @Test func aSilentDeviceIsPingedAfterAPeriodAndDroppedAfterTwo() throws {
        advance(seconds: 29)
        #expect(try written().isEmpty)
        advance(seconds: 1)
        #expect(try written().map(\.opcode) == [.ping])
        advance(seconds: 29)
        #expect(session.closeReason == nil)
        advance(seconds: 1)
        #expect(session.closeReason == .heartbeatTimeout)
    }

    @Test func aDeviceThatAnswersItsPingsStays() throws {
        for _ in 0..<4 {
            advance(seconds: 30)
            try channel.writeInbound(frame(.pong, Array("hb".utf8)))
        }
        advance(seconds: 30)
        let pings = try written().filter { $0.opcode == .ping }.count
        #expect(session.closeReason == nil && pings == 5)
    }

    @Test func aDeviceHeardOnceIsDroppedTwoPeriodsAfterThat() throws {
        advance(seconds: 30)
        try channel.writeInbound(frame(.pong, Array("hb".utf8)))
        advance(seconds: 30)
        #expect(session.closeReason == nil)
        advance(seconds: 30)
        #expect(session.closeReason == nil)
        advance(seconds: 30)
        #expect(session.closeReason == .heartbeatTimeout)
    }

    @Test func aDevicesOwnPingsDoNotKeepItAlive() throws {
        for seconds in [20, 20, 20] as [Int64] {
            advance(seconds: seconds)
            try channel.writeInbound(frame(.ping, Array("p".utf8)))
        }
        #expect(session.closeReason == .heartbeatTimeout)
    }

    @Test func aDeviceHeldBackByTheOutboxIsNotSilent() throws {
        session.setReadingPaused(true, order: 1)
        advance(seconds: 90)
        #expect(session.closeReason == nil)
        session.setReadingPaused(false, order: 2)
        advance(seconds: 60)
        #expect(session.closeReason == .heartbeatTimeout)
    }

    @Test func anOverflowingSendQueueDropsTheConnection() throws {
        channel.pipeline.fireUserInboundEventTriggered(SendQueueLimit.Overflow(queuedBytes: 2 << 20))
        #expect(!channel.isActive && session.closeReason == .heartbeatTimeout && sink.ended.withLock { $0 })
    }

    @Test func answersSentBeforeTheCloseLeaveBeforeIt() throws {
        session.send(.error(code: "bad_message", message: "x"))
        session.close(.policyViolation, reason: .badMessages)
        #expect(try written().map(\.opcode) == [.text, .connectionClose])
    }

    func autoRead() -> Bool? {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool
    }

    @Test func closingTellsTheSink() throws {
        try channel.close().wait()
        #expect(sink.ended.withLock { $0 })
    }
}
