import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOWebSocket
import Synchronization
import Testing

@testable import Gatehouse

/// The hand-read WebSocket upgrade of a device's connection, and its hand-over to NIO's HTTP pipeline.
@Suite struct DeviceUpgradeFastPathTests {
    /// RFC 6455 1.3's example key and its accept value.
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    static func request(path: String = "/v1/connect?token=abc", headers: [String]? = nil, requestLine: String? = nil) -> String {
        let lines = headers ?? ["Host: gw", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: \(key)", "Sec-WebSocket-Version: 13"]
        return ([requestLine ?? "GET \(path) HTTP/1.1"] + lines).joined(separator: "\r\n") + "\r\n\r\n"
    }

    static func scan(_ text: String) -> WebSocketUpgradeRequest.Scan {
        WebSocketUpgradeRequest.scan(ByteBuffer(string: text), path: "/v1/connect")
    }

    static func isOther(_ text: String) -> Bool {
        if case .other = scan(text) { return true }
        return false
    }

    // MARK: Reading the request

    @Test func readsAPlainUpgrade() throws {
        let text = Self.request()
        guard case .upgrade(let request) = Self.scan(text + "trailing frame bytes") else { Issue.record("not an upgrade"); return }
        #expect(request.key == Self.key)
        #expect(request.length == text.utf8.count)
        #expect(request.head.uri == "/v1/connect?token=abc")
        #expect(request.head.method == .GET)
        #expect(request.head.headers.first(name: "host") == "gw")
        #expect(request.head.headers.count == 5)
    }

    @Test func namesAndTheUpgradeTokenAreCaseInsensitiveAndValuesTrimmed() {
        let headers = ["UPGRADE: h2c, WebSocket", "sec-websocket-KEY: \t\(Self.key) ", "Sec-Websocket-Version:13"]
        guard case .upgrade(let request) = Self.scan(Self.request(path: "/v1/connect", headers: headers)) else {
            Issue.record("not an upgrade"); return
        }
        #expect(request.key == Self.key)
        #expect(request.head.uri == "/v1/connect")
    }

    @Test func everyPrefixOfAHeadIsIncomplete() {
        let text = Self.request()
        for count in 0..<(text.utf8.count - 1) {
            guard case .incomplete = Self.scan(String(text.utf8.prefix(count))!) else {
                Issue.record("a prefix of \(count) bytes was not incomplete"); return
            }
        }
    }

    @Test func leavesEveryUnusualRequestToNIO() {
        let plain = ["Upgrade: websocket", "Sec-WebSocket-Key: \(Self.key)", "Sec-WebSocket-Version: 13"]
        let others: [String] = [
            Self.request(requestLine: "POST /v1/connect HTTP/1.1"),
            Self.request(requestLine: "GET /v1/connect HTTP/1.0"),
            Self.request(requestLine: "GET  /v1/connect HTTP/1.1"),
            Self.request(requestLine: "GET /v1/connect HTTP/1.1 "),
            Self.request(path: "/v1/connectx"),
            Self.request(path: "/v1/live/cam-1"),
            Self.request(path: "/healthz"),
            Self.request(headers: Array(plain.dropFirst())),
            Self.request(headers: ["Upgrade: h2c"] + plain.dropFirst()),
            Self.request(headers: plain.filter { !$0.hasPrefix("Sec-WebSocket-Key") }),
            Self.request(headers: plain + ["Sec-WebSocket-Key: \(Self.key)"]),
            Self.request(headers: ["Upgrade: websocket", "Sec-WebSocket-Key: a, b", "Sec-WebSocket-Version: 13"]),
            Self.request(headers: ["Upgrade: websocket", "Sec-WebSocket-Key:  ", "Sec-WebSocket-Version: 13"]),
            Self.request(headers: ["Upgrade: websocket", "Sec-WebSocket-Key: \(Self.key)", "Sec-WebSocket-Version: 8"]),
            Self.request(headers: ["Upgrade: websocket", "Sec-WebSocket-Key: \(Self.key)"]),
            Self.request(headers: plain + ["Sec-WebSocket-Version: 13"]),
            Self.request(headers: plain + ["Content-Length: 0"]),
            Self.request(headers: plain + ["Transfer-Encoding: chunked"]),
            Self.request(headers: plain + [" folded: line"]),
            Self.request(headers: plain + ["Bad Name: x"]),
            Self.request(headers: plain + [": no name"]),
            Self.request(headers: plain + ["No-Colon"]),
            Self.request(headers: plain + ["Control: a\u{1}b"]),
            Self.request(headers: plain + ["Bare: a\nb"]),
            Self.request(headers: plain + ["Utf8: caf\u{e9}"]),
            "\r\n" + Self.request(),
        ]
        for (index, text) in others.enumerated() {
            #expect(Self.isOther(text), "request \(index) was read as a plain upgrade")
        }
    }

    // MARK: The handler

    /// What the steps saw, and where the connection went.
    final class Log {
        var admitted: [HTTPRequestHead] = []
        var upgraded = 0
        var fellBack = 0
    }

    /// Collects what reaches the end of the pipeline.
    final class Collector<Item>: ChannelInboundHandler {
        typealias InboundIn = Item
        var items: [Item] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { items.append(unwrapInboundIn(data)) }
    }

    final class Harness {
        let channel = EmbeddedChannel()
        let log = Log()
        /// What reaches the device's handlers: the bytes behind the request.
        let deviceBytes = Collector<ByteBuffer>()
        let bytes = Collector<ByteBuffer>()
        let result: EventLoopPromise<String>
        /// Completes what NIO's pipeline would.
        let httpResult: EventLoopPromise<String>

        init(admit: Bool = true) throws {
            result = channel.eventLoop.makePromise()
            httpResult = channel.eventLoop.makePromise()
            let (log, deviceBytes, bytes, httpResult) = (log, deviceBytes, bytes, httpResult)
            let steps = DeviceUpgradeFastPath<String>.Steps(
                admit: { head, _ in
                    log.admitted.append(head)
                    return admit ? HTTPHeaders([("Sec-WebSocket-Protocol", "gatehouse.v1")]) : nil
                },
                upgraded: { channel in
                    log.upgraded += 1
                    try channel.pipeline.syncOperations.addHandler(deviceBytes)
                    return "device"
                },
                fallBack: { channel in
                    log.fellBack += 1
                    try channel.pipeline.syncOperations.addHandler(bytes)
                    return httpResult.futureResult
                }
            )
            try channel.pipeline.syncOperations.addHandler(
                DeviceUpgradeFastPath(path: "/v1/connect", steps: steps, result: result)
            )
        }

        /// Promises must complete: what a test left open ends as a closed connection.
        deinit {
            httpResult.fail(ChannelError.eof)
            result.fail(ChannelError.eof)
        }

        func send(_ text: String) throws { try channel.writeInbound(ByteBuffer(string: text)) }

        func written() throws -> String {
            channel.embeddedEventLoop.run()
            var all = ByteBuffer()
            while var part = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&part) }
            return String(buffer: all)
        }

        var fastPathRemoved: Bool {
            (try? channel.pipeline.syncOperations.handler(type: DeviceUpgradeFastPath<String>.self)) == nil
        }

        func outcome() throws -> String? {
            let outcome = Mutex<String?>(nil)
            result.futureResult.whenSuccess { value in outcome.withLock { $0 = value } }
            channel.embeddedEventLoop.run()
            return outcome.withLock { $0 }
        }
    }

    /// A masked text frame, as a client sends it.
    static func maskedText(_ text: String) -> [UInt8] {
        let mask: [UInt8] = [1, 2, 3, 4]
        let payload = Array(text.utf8).enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return [0x81, 0x80 | UInt8(payload.count)] + mask + payload
    }

    @Test func answersAPlainUpgradeAndPassesOnTheFramesBehindIt() throws {
        let harness = try Harness()
        try harness.channel.writeInbound(ByteBuffer(bytes: Array(Self.request().utf8) + Self.maskedText("hello")))
        #expect(try harness.written() == "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Protocol: gatehouse.v1\r\n"
            + "Upgrade: websocket\r\nSec-WebSocket-Accept: \(Self.accept)\r\nConnection: upgrade\r\n\r\n")
        #expect(harness.log.admitted.map(\.uri) == ["/v1/connect?token=abc"])
        #expect((harness.log.upgraded, harness.log.fellBack) == (1, 0))
        #expect(harness.deviceBytes.items.map { Array(buffer: $0) } == [Self.maskedText("hello")])
        #expect(harness.fastPathRemoved)
        #expect(try harness.outcome() == "device")
        // None of NIO's WebSocket handlers: the device's `SendQueueLimit` encodes, its `DeviceFrameHandler` decodes.
        #expect((try? harness.channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)) == nil)
        #expect((try? harness.channel.pipeline.syncOperations.handler(type: WebSocketProtocolErrorHandler.self)) == nil)
        #expect((try? harness.channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)) == nil)
    }

    @Test func aRequestArrivingByteByByteIsUpgradedOnce() throws {
        let harness = try Harness()
        for byte in Self.request().utf8 { try harness.channel.writeInbound(ByteBuffer(bytes: [byte])) }
        #expect(try harness.written().hasPrefix("HTTP/1.1 101 "))
        #expect((harness.log.admitted.count, harness.log.upgraded, harness.log.fellBack) == (1, 1, 0))
        #expect(try harness.outcome() == "device")
    }

    @Test func aRefusalIsHandedToNIOWithEveryByte() throws {
        let harness = try Harness(admit: false)
        let text = Self.request()
        try harness.send(String(text.prefix(10)))
        try harness.send(String(text.dropFirst(10)) + "more")
        #expect(harness.log.admitted.count == 1)
        #expect((harness.log.upgraded, harness.log.fellBack) == (0, 1))
        #expect(harness.bytes.items.map { String(buffer: $0) } == [text + "more"])
        #expect(try harness.written().isEmpty)
        #expect(harness.fastPathRemoved)
        // NIO's pipeline answers, and its result is the connection's.
        #expect(try harness.outcome() == nil)
        harness.httpResult.succeed("refused")
        #expect(try harness.outcome() == "refused")
    }

    @Test func otherRequestsGoToNIOWithoutAdmission() throws {
        let harness = try Harness()
        let text = "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
        try harness.send(text)
        #expect(harness.log.admitted.isEmpty)
        #expect(harness.log.fellBack == 1)
        #expect(harness.bytes.items.map { String(buffer: $0) } == [text])
    }

    @Test func aHeadLongerThanTheLimitGoesToNIO() throws {
        let harness = try Harness()
        let long = "GET /v1/connect HTTP/1.1\r\nX-Long: " + String(repeating: "a", count: DeviceUpgradeFastPath<String>.maxHeadBytes)
        try harness.send(long)
        #expect(harness.log.fellBack == 1)
        #expect(harness.bytes.items.map(\.readableBytes) == [long.utf8.count])
    }

    @Test func aConnectionStillReadingItsRequestIsClosedWhenTheListenerQuiesces() throws {
        let harness = try Harness()
        try harness.send("GET /v1/connect HTTP/1.1\r\n")
        let failed = Mutex(false)
        harness.result.futureResult.whenFailure { _ in failed.withLock { $0 = true } }
        harness.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        harness.channel.embeddedEventLoop.run()
        #expect(!harness.channel.isActive)
        #expect(failed.withLock { $0 })
        #expect(harness.log.admitted.isEmpty)
    }

    @Test func aConnectionThatClosesFirstFailsTheResult() throws {
        let harness = try Harness()
        try harness.send("GET /v1/conn")
        let failed = Mutex(false)
        harness.result.futureResult.whenFailure { _ in failed.withLock { $0 = true } }
        try harness.channel.close().wait()
        #expect(failed.withLock { $0 })
        #expect(harness.log.admitted.isEmpty)
    }
}
