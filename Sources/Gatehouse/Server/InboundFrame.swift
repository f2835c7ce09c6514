import NIOCore
import NIOWebSocket

/// One WebSocket frame from a device, as `InboundFrameParser` cut it from the bytes read: its payload still masked,
/// a slice of the read buffer (nothing is copied or allocated to make one).
struct InboundFrame {
    var fin: Bool
    var rsv1: Bool
    var rsv2: Bool
    var rsv3: Bool
    var opcode: WebSocketOpcode
    var maskKey: WebSocketMaskingKey?
    /// The payload as it arrived (masked when `maskKey` is set).
    var data: ByteBuffer

    var length: Int { data.readableBytes }

    /// The payload unmasked, eight bytes at a time, into a new buffer.
    func unmaskedPayload(allocator: ByteBufferAllocator) -> ByteBuffer {
        guard maskKey != nil, data.readableBytes > 0 else { return data }
        let count = data.readableBytes
        var unmasked = allocator.buffer(capacity: count)
        unmasked.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
            unmask(into: target)
            return count
        }
        return unmasked
    }

    /// Calls `body` with the payload unmasked into temporary memory (on the stack for a small one), for what is read
    /// once and not kept, such as a text message that is parsed: no buffer to allocate and free.
    func withUnmaskedPayload<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        guard maskKey != nil, data.readableBytes > 0 else { return data.withUnsafeReadableBytes(body) }
        return withUnsafeTemporaryAllocation(byteCount: data.readableBytes, alignment: 8) { target in
            unmask(into: target)
            return body(UnsafeRawBufferPointer(target))
        }
    }

    /// Writes the payload unmasked to the start of `target` (at least `data.readableBytes` long).
    private func unmask(into target: UnsafeMutableRawBufferPointer) {
        guard let key = maskKey else { return }
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { bytes in
            for index in 0..<8 { bytes[index] = key[index % 4] }
        }
        let count = data.readableBytes
        data.withUnsafeReadableBytes { source in
            var index = 0
            while index + 8 <= count {
                let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ pattern
                target.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < count {
                target[index] = source[index] ^ key[index % 4]
                index += 1
            }
        }
    }
}
