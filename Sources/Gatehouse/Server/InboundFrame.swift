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
    /// The mask key's four bytes as they came (a `UInt32` read in the host's byte order), when the frame is masked.
    /// Not NIO's `WebSocketMaskingKey`: made from bytes, its generic initialiser allocated four times per frame.
    var maskKey: UInt32?
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
        // The key twice, byte for byte as it came: the mask of eight payload bytes.
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { bytes in
            bytes.storeBytes(of: key, as: UInt32.self)
            bytes.storeBytes(of: key, toByteOffset: 4, as: UInt32.self)
        }
        let count = data.readableBytes
        data.withUnsafeReadableBytes { source in
            var index = 0
            while index + 8 <= count {
                let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ pattern
                target.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            // Fewer than eight left: the pattern's first bytes.
            withUnsafeBytes(of: pattern) { mask in
                for offset in 0..<(count - index) { target[index + offset] = source[index + offset] ^ mask[offset] }
            }
        }
    }
}
