import NIOCore
import NIOEmbedded
import NIOWebSocket

@testable import Gatehouse

extension EmbeddedChannel {
    /// Adds the outbound side of a device's connection as the gateway builds it (NIO's frame encoder, then the
    /// send-queue cap), after what is in the pipeline, and returns the cap, which a `DeviceSession` writes its encoded
    /// frames to.
    func addDeviceOutput(maxSendQueueBytes: Int = 1 << 20) throws -> SendQueueLimit {
        let output = SendQueueLimit(maxBytes: maxSendQueueBytes, tlsBelow: false, nioEncoderBelow: true)
        try pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
        try pipeline.syncOperations.addHandler(output)
        return output
    }

    /// The frames written to the device so far, read back from the bytes with NIO's decoder (as a client reads them).
    func readOutboundFrames() throws -> [WebSocketFrame] {
        let reader = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)))
        while let bytes = try readOutbound(as: ByteBuffer.self) { try reader.writeInbound(bytes) }
        var frames: [WebSocketFrame] = []
        while let frame = try reader.readInbound(as: WebSocketFrame.self) { frames.append(frame) }
        return frames
    }
}
