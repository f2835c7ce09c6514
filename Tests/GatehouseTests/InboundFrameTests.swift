@testable import Gatehouse
import NIOCore
import NIOWebSocket
import Testing

@Suite struct InboundFrameTests {
    static func frame(_ data: ByteBuffer, key: WebSocketMaskingKey?) -> InboundFrame {
        // The key's bytes in their wire order, as the parser reads them.
        let maskKey = key.map { Array($0).withUnsafeBytes { $0.load(as: UInt32.self) } }
        return InboundFrame(fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: .text, maskKey: maskKey, data: data)
    }

    /// Every length around the 8-byte steps: the same bytes as NIO's own unmasking.
    @Test func matchesNIOsUnmasking() {
        let allocator = ByteBufferAllocator()
        let key = WebSocketMaskingKey([0x9A, 0x01, 0xFF, 0x37] as [UInt8])!
        for count in Array(0...41) + [4_099, 100_003] {
            let data = allocator.buffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })
            var expected = data
            expected.webSocketUnmask(key)
            let frame = Self.frame(data, key: key)
            #expect(frame.unmaskedPayload(allocator: allocator) == expected, "length \(count)")
            #expect(frame.withUnmaskedPayload { Array($0) } == Array(expected.readableBytesView), "length \(count)")
        }
    }

    @Test func anUnmaskedFrameIsItsData() {
        let data = ByteBuffer(string: "{\"seq\":1}")
        #expect(Self.frame(data, key: nil).unmaskedPayload(allocator: ByteBufferAllocator()) == data)
        #expect(Self.frame(data, key: nil).withUnmaskedPayload { Array($0) } == Array(data.readableBytesView))
    }

    /// A payload behind other bytes in its buffer (a slice of a read) is read from its reader index.
    @Test func aPayloadIsReadFromItsReaderIndex() {
        let key = WebSocketMaskingKey([1, 2, 3, 4] as [UInt8])!
        var payload = ByteBuffer(string: "{\"seq\":12345678901}")
        payload.webSocketMask(key)
        var buffer = ByteBuffer(string: "header-bytes")
        buffer.writeImmutableBuffer(payload)
        buffer.moveReaderIndex(forwardBy: 12)
        let frame = Self.frame(buffer, key: key)
        #expect(frame.unmaskedPayload(allocator: ByteBufferAllocator()) == ByteBuffer(string: "{\"seq\":12345678901}"))
        #expect(frame.withUnmaskedPayload { Array($0) } == Array("{\"seq\":12345678901}".utf8))
    }
}
