import CompressNIO
import Foundation
import NIOCore
import NIOHTTP1

/// permessage-deflate (RFC 7692) for devices on metered links, inflating on the event loop without
/// a task hop. The gateway only inflates: its own frames are small JSON, and RFC 7692 lets an endpoint
/// send uncompressed messages on a compressed connection. We answer with `client_no_context_takeover`
/// so every message inflates on its own (no per-connection 32 KiB window between messages).
final class PerMessageDeflate {
    static let name = "permessage-deflate"
    private let inflater: ZlibDecompressor

    init() throws {
        inflater = try ZlibDecompressor(algorithm: .deflate, windowSize: 15)
    }

    /// The `Sec-WebSocket-Extensions` answer when the client offers permessage-deflate, else nil.
    static func negotiate(_ headers: HTTPHeaders) -> String? {
        let offers = headers[canonicalForm: "Sec-WebSocket-Extensions"].map { $0.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) ?? "" }
        guard offers.contains(name) else { return nil }
        return "\(name); server_no_context_takeover; client_no_context_takeover"
    }

    /// Why a message did not inflate.
    enum InflateFailure: Error {
        /// Past the size it may have.
        case tooBig
        /// Not a deflate stream.
        case corrupt
    }

    /// Inflates one whole message (all its frames' payloads); throws past `maxSize` bytes, or for bytes that are not
    /// a deflate stream.
    func inflate(_ message: ByteBuffer, maxSize: Int, allocator: ByteBufferAllocator) throws(InflateFailure) -> ByteBuffer {
        var input = message
        input.writeBytes([0x00, 0x00, 0xFF, 0xFF])
        defer { try? inflater.reset() }
        do {
            return try input.decompressStream(with: inflater, maxSize: maxSize + 1, allocator: allocator)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw .tooBig
        } catch {
            throw .corrupt
        }
    }
}
