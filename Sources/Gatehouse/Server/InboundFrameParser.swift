import NIOCore
import NIOWebSocket

/// Cuts a device's bytes into WebSocket frames (RFC 6455 5.2), in `DeviceFrameHandler`, which owns one per connection.
///
/// Why not NIO's `WebSocketFrameDecoder`: behind a `ByteToMessageHandler`, every frame cost a heap object (the
/// frame's storage), a boxed `NIOAny` and a pass through two more handlers; on the QoS 0 telemetry flow that was
/// about a tenth of the gateway's CPU (docs/benchmarks.md). This one cuts frames in place and checks what that
/// decoder checks, at the same point (once the length is read) and in the same order: the length against
/// `maxFrameSize`, then control frames (unfragmented, at most 125 bytes). A refused frame is skipped as its bytes
/// arrive, so the device still reads our close frame and its answer to it is seen.
struct InboundFrameParser {
    enum Refusal: Hashable {
        case tooLong
        case fragmentedControlFrame
        case longControlFrame
    }

    enum Step {
        case frame(InboundFrame)
        case refused(Refusal)
    }

    let maxFrameSize: Int
    /// What was read and not cut yet: the start of a frame that has not arrived whole.
    private var unread: ByteBuffer?
    /// Bytes of a refused frame (its mask key and payload) that have not arrived yet: dropped as they do.
    private var skipping = 0

    init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes read from the device, after those of earlier reads.
    mutating func append(_ bytes: ByteBuffer) {
        guard var held = unread.take() else { return unread = bytes }
        // Only the frame not whole yet is kept: without this, a device whose reads never end on a frame's end would
        // have every byte it ever sent kept here (as `ByteToMessageHandler` reclaims what it has read).
        held.discardReadBytes()
        var bytes = bytes
        held.writeBuffer(&bytes)
        unread = held
    }

    /// The bytes of the storage kept between reads (for tests).
    var heldCapacity: Int { unread?.capacity ?? 0 }

    /// The next whole frame, or refused frame, of what was appended; nil until more arrives.
    mutating func next() -> Step? {
        guard var buffer = unread.take() else { return nil }
        let step = next(&buffer)
        // Nothing is kept of a read once it is all cut (the frames' slices keep what they need).
        if buffer.readableBytes > 0 { unread = buffer }
        return step
    }

    private mutating func next(_ buffer: inout ByteBuffer) -> Step? {
        guard skipRefused(&buffer) else { return nil }
        let start = buffer.readerIndex
        guard let (first, masked, lengthEnd, length, arrivedMaskKey) = buffer.withUnsafeReadableBytes(Self.header) else { return nil }
        let headerLength = lengthEnd + (masked ? 4 : 0)
        // Judged once the length is read, before the mask key, as NIO's decoder does.
        let fin = first & 0x80 != 0
        let control = first & 0x08 != 0
        let refusal: Refusal? =
            if length > maxFrameSize { .tooLong }
            else if control && !fin { .fragmentedControlFrame }
            else if control && length > 125 { .longControlFrame }
            else { nil }
        if let refusal {
            buffer.moveReaderIndex(forwardBy: lengthEnd)
            skipping = length > Int.max - 4 ? Int.max : length + headerLength - lengthEnd
            _ = skipRefused(&buffer)
            return .refused(refusal)
        }
        guard buffer.readableBytes >= headerLength, buffer.readableBytes - headerLength >= length else { return nil }
        let maskKey = masked ? arrivedMaskKey : nil
        let data = buffer.getSlice(at: start + headerLength, length: length)!
        buffer.moveReaderIndex(forwardBy: headerLength + length)
        return .frame(InboundFrame(
            fin: fin, rsv1: first & 0x40 != 0, rsv2: first & 0x20 != 0, rsv3: first & 0x10 != 0,
            opcode: WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F)!, maskKey: maskKey, data: data))
    }

    /// A frame's header from the start of `bytes`, as far as it arrived: its first byte, whether it is masked, where
    /// its length ends, the length, and the mask key once it arrived; nil until the length has. Read in one access to
    /// the buffer: each `getInteger` would be an access of its own, checked for exclusivity at run time.
    private static func header(_ bytes: UnsafeRawBufferPointer)
        -> (first: UInt8, masked: Bool, lengthEnd: Int, length: Int, maskKey: UInt32?)?
    {
        guard bytes.count >= 2 else { return nil }
        var (lengthEnd, length) = (2, Int(bytes[1] & 0x7F))
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            (lengthEnd, length) = (4, Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))))
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            (lengthEnd, length) = (10, Int(clamping: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt64.self))))
        }
        let masked = bytes[1] & 0x80 != 0
        let maskKey = masked && bytes.count >= lengthEnd + 4 ? bytes.loadUnaligned(fromByteOffset: lengthEnd, as: UInt32.self) : nil
        return (bytes[0], masked, lengthEnd, length, maskKey)
    }

    /// Drops what has arrived of a refused frame's mask key and payload; true once all of it has.
    private mutating func skipRefused(_ buffer: inout ByteBuffer) -> Bool {
        guard skipping > 0 else { return true }
        let skipped = min(skipping, buffer.readableBytes)
        buffer.moveReaderIndex(forwardBy: skipped)
        skipping -= skipped
        return skipping == 0
    }
}
