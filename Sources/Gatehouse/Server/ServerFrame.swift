import NIOCore
import NIOWebSocket

extension ByteBuffer {
    /// Appends one whole text frame as a server sends it (RFC 6455 5.2): FIN, opcode 1, no mask, the shortest
    /// length encoding, then `payload`. Hand-written because NIO's frame header writer is internal to its
    /// `WebSocketFrameEncoder`, which takes one frame per write and gives each a header buffer of its own; this way a
    /// device's answers of one delivery are one buffer and one write (`LoopFrames`).
    mutating func writeServerTextFrame(_ payload: UnsafeRawBufferPointer) {
        writeFrame(first: 0x81, maskKey: nil, payload: payload)
    }

    /// Appends `frame` as a server sends it: its FIN, reserved bits and opcode, no mask (the gateway's frames have
    /// none, and have no extension data), the shortest length encoding, then its payload.
    mutating func writeServerFrame(_ frame: WebSocketFrame) {
        assert(frame.maskKey == nil, "the gateway's frames carry no mask")
        writeFrame(frame)
    }

    /// Appends `frame` as it goes on the wire: its FIN, reserved bits and opcode, the shortest length encoding, its
    /// mask key if it has one, then its payload as it is (already masked, with a key). It has no extension data.
    mutating func writeFrame(_ frame: WebSocketFrame) {
        assert(frame.extensionData == nil, "frames here carry no extension data")
        let first = UInt8(webSocketOpcode: frame.opcode) | (frame.fin ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) | (frame.rsv2 ? 0x20 : 0)
            | (frame.rsv3 ? 0x10 : 0)
        frame.data.withUnsafeReadableBytes { writeFrame(first: first, maskKey: frame.maskKey, payload: $0) }
    }

    /// Written in one access to the buffer's storage: each `writeInteger` and `writeBytes` would be an access of its
    /// own, checked for exclusivity at run time (about 1 % of QoS 0 telemetry's samples, for its acks).
    private mutating func writeFrame(first: UInt8, maskKey: WebSocketMaskingKey?, payload: UnsafeRawBufferPointer) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: 14 + payload.count) { out in
            let masked: UInt8 = maskKey == nil ? 0 : 0x80
            out[0] = first
            var at = 2
            switch payload.count {
            case ..<126:
                out[1] = masked | UInt8(payload.count)
            case ...Int(UInt16.max):
                out[1] = masked | 126
                out.storeBytes(of: UInt16(payload.count).bigEndian, toByteOffset: at, as: UInt16.self)
                at += 2
            default:
                out[1] = masked | 127
                out.storeBytes(of: UInt64(payload.count).bigEndian, toByteOffset: at, as: UInt64.self)
                at += 8
            }
            if let maskKey {
                for byte in maskKey {
                    out[at] = byte
                    at += 1
                }
            }
            UnsafeMutableRawBufferPointer(rebasing: out[at...]).copyMemory(from: payload)
            return at + payload.count
        }
    }
}
