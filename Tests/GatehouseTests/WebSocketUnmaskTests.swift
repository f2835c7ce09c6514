@testable import Gatehouse
import NIOCore
import NIOWebSocket
import Testing

@Suite struct WebSocketUnmaskTests {
    /// Every length around the 8-byte steps, with and without extension data ahead of the payload (the key runs
    /// on from it): the same bytes as NIO's own `unmaskedData`.
    @Test(arguments: [0, 1, 3])
    func matchesNIOsUnmasking(extensionBytes: Int) {
        let allocator = ByteBufferAllocator()
        let key = WebSocketMaskingKey.random()
        for count in Array(0...41) + [4_099, 100_003] {
            let data = allocator.buffer(bytes: (0..<count).map { _ in UInt8.random(in: 0...255) })
            let extensionData = extensionBytes == 0 ? nil : allocator.buffer(bytes: [UInt8](repeating: 7, count: extensionBytes))
            let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: data, extensionData: extensionData)
            #expect(frame.unmaskedPayload(allocator: allocator) == frame.unmaskedData, "length \(count)")
            #expect(frame.withUnmaskedPayload { Array($0) } == Array(frame.unmaskedData.readableBytesView), "length \(count)")
        }
    }

    @Test func anUnmaskedFrameIsItsData() {
        let data = ByteBuffer(string: "{\"seq\":1}")
        #expect(WebSocketFrame(fin: true, opcode: .text, data: data).unmaskedPayload(allocator: ByteBufferAllocator()) == data)
        #expect(WebSocketFrame(fin: true, opcode: .text, data: data).withUnmaskedPayload { Array($0) } == Array(data.readableBytesView))
    }

    /// A payload behind other bytes in its buffer (as the frame decoder may hand it on) is read from its reader index.
    @Test func aPayloadIsReadFromItsReaderIndex() {
        let key = WebSocketMaskingKey.random()
        var payload = ByteBuffer(string: "{\"seq\":12345678901}")
        payload.webSocketMask(key)
        var buffer = ByteBuffer(string: "header-bytes")
        buffer.writeImmutableBuffer(payload)
        buffer.moveReaderIndex(forwardBy: 12)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: buffer)
        #expect(frame.unmaskedPayload(allocator: ByteBufferAllocator()) == ByteBuffer(string: "{\"seq\":12345678901}"))
        #expect(frame.withUnmaskedPayload { Array($0) } == Array("{\"seq\":12345678901}".utf8))
    }
}
