import NIOCore

extension ByteBuffer {
    /// Appends one whole text frame as a server sends it (RFC 6455 5.2): FIN, opcode 1, no mask, the shortest
    /// length encoding, then `payload`. Hand-written because NIO's frame header writer is internal to its
    /// `WebSocketFrameEncoder`, which takes one frame per write and gives each a header buffer of its own; this way a
    /// device's answers of one delivery are one buffer and one write (`LoopFrames`).
    mutating func writeServerTextFrame(_ payload: UnsafeRawBufferPointer) {
        writeInteger(UInt8(0x81))
        switch payload.count {
        case ..<126:
            writeInteger(UInt8(payload.count))
        case ...Int(UInt16.max):
            writeInteger(UInt8(126))
            writeInteger(UInt16(payload.count))
        default:
            writeInteger(UInt8(127))
            writeInteger(UInt64(payload.count))
        }
        writeBytes(payload)
    }
}
