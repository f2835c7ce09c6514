import NIOCore
import NIOWebSocket

extension WebSocketFrame {
    /// The payload unmasked, as NIO's `unmaskedData` gives it, but eight bytes at a time straight into a new
    /// buffer. NIO's copies the masked bytes first and then unmasks them one byte at a time; on the telemetry
    /// flow that was about 2 % of the gateway's CPU.
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
        // As in NIO: the key runs on from the extension data, which comes first.
        let offset = (extensionData?.readableBytes ?? 0) % 4
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { bytes in
            for index in 0..<8 { bytes[index] = key[(index + offset) % 4] }
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
                target[index] = source[index] ^ key[(index + offset) % 4]
                index += 1
            }
        }
    }
}
