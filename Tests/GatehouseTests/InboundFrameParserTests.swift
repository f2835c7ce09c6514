@testable import Gatehouse
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

/// `InboundFrameParser` against NIO's `WebSocketFrameDecoder`, which it replaces on the device path: the same frames
/// from the same bytes however the reads split them, and a refusal where NIO's decoder throws.
@Suite struct InboundFrameParserTests {
    /// A frame's fields, from either decoder.
    struct Cut: Equatable, CustomStringConvertible {
        var flags: UInt8
        var opcode: UInt8
        var mask: [UInt8]?
        var data: [UInt8]

        init(fin: Bool, rsv: (Bool, Bool, Bool), opcode: WebSocketOpcode, mask: [UInt8]?, data: ByteBuffer) {
            flags = (fin ? 8 : 0) | (rsv.0 ? 4 : 0) | (rsv.1 ? 2 : 0) | (rsv.2 ? 1 : 0)
            self.opcode = UInt8(webSocketOpcode: opcode)
            self.mask = mask
            self.data = Array(buffer: data)
        }

        init(_ frame: WebSocketFrame) {
            self.init(fin: frame.fin, rsv: (frame.rsv1, frame.rsv2, frame.rsv3), opcode: frame.opcode,
                      mask: frame.maskKey.map(Array.init), data: frame.data)
        }

        init(_ frame: InboundFrame) {
            self.init(fin: frame.fin, rsv: (frame.rsv1, frame.rsv2, frame.rsv3), opcode: frame.opcode,
                      mask: frame.maskKey.map { withUnsafeBytes(of: $0, Array.init) }, data: frame.data)
        }

        var description: String { "flags \(flags) opcode \(opcode) mask \(mask ?? []) \(data.count) bytes" }
    }

    enum Outcome: Equatable {
        case frame(Cut)
        case refused(InboundFrameParser.Refusal)
    }

    static let allocator = ByteBufferAllocator()

    /// Every header form: each length encoding and its edges (up to `maxLength`), masked or not, every flag and
    /// opcode (control frames whole and short, as both decoders require).
    static func frames(maxLength: Int) -> [WebSocketFrame] {
        var frames: [WebSocketFrame] = []
        let key = WebSocketMaskingKey([0xA1, 0x02, 0x7F, 0xFE] as [UInt8])!
        for (index, length) in [0, 1, 7, 125, 126, 127, 1000, 65_535, 65_536, 70_001].enumerated() where length <= maxLength {
            for opcode in UInt8(0)...15 where opcode & 0x08 == 0 || length <= 125 {
                let data = allocator.buffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(opcode)) })
                let flags = (index + Int(opcode)) % 8
                frames.append(WebSocketFrame(
                    fin: opcode & 0x08 != 0 || flags & 1 == 0, rsv1: flags & 2 != 0, rsv2: flags & 4 != 0, rsv3: opcode % 5 == 0,
                    opcode: WebSocketOpcode(encodedWebSocketOpcode: opcode)!, maskKey: (index + Int(opcode)) % 3 == 0 ? nil : key,
                    data: data))
            }
        }
        return frames
    }

    /// `bytes` in reads of `size` bytes.
    static func reads(_ bytes: ByteBuffer, size: Int) -> [ByteBuffer] {
        stride(from: 0, to: bytes.readableBytes, by: size).map { start in
            bytes.getSlice(at: bytes.readerIndex + start, length: min(size, bytes.readableBytes - start))!
        }
    }

    static func ours(_ reads: [ByteBuffer], maxFrameSize: Int) -> [Outcome] {
        var parser = InboundFrameParser(maxFrameSize: maxFrameSize)
        var outcomes: [Outcome] = []
        for read in reads {
            parser.append(read)
            while let step = parser.next() {
                switch step {
                case .frame(let frame): outcomes.append(.frame(Cut(frame)))
                case .refused(let refusal): outcomes.append(.refused(refusal))
                }
            }
        }
        return outcomes
    }

    /// NIO's decoder on the same reads: its frames, and the error it stopped on.
    static func nios(_ reads: [ByteBuffer], maxFrameSize: Int) throws -> (frames: [Cut], error: NIOWebSocketError?) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
        defer { _ = try? channel.finish() }
        var frames: [Cut] = []
        for read in reads {
            var failure: NIOWebSocketError?
            do {
                try channel.writeInbound(read)
            } catch let error as NIOWebSocketError {
                failure = error
            }
            while let frame = try channel.readInbound(as: WebSocketFrame.self) { frames.append(Cut(frame)) }
            if let failure { return (frames, failure) }
        }
        return (frames, nil)
    }

    static func wire(_ frames: [WebSocketFrame]) -> ByteBuffer {
        var bytes = allocator.buffer(capacity: 0)
        for frame in frames {
            var encoded = NIOFrameBytes.bytes(of: frame, allocator: allocator)
            bytes.writeBuffer(&encoded)
        }
        return bytes
    }

    /// Reads of a few bytes split every header at each of its bytes (with the shorter frames only: a debug build
    /// takes seconds for the long ones byte by byte).
    @Test(arguments: [1, 2, 3, 5, 14, 127, 4_096, 1 << 20])
    func cutsTheFramesNIOsDecoderCuts(readSize: Int) throws {
        let frames = Self.frames(maxLength: readSize < 100 ? 1_000 : .max)
        let reads = Self.reads(Self.wire(frames), size: readSize)
        let nio = try Self.nios(reads, maxFrameSize: 1 << 17)
        // NIOFrameBytes (the wire here) gives back the frames NIO's decoder cut.
        #expect(nio.error == nil && nio.frames == frames.map(Cut.init))
        #expect(Self.ours(reads, maxFrameSize: 1 << 17) == nio.frames.map(Outcome.frame))
    }

    /// RFC 6455 asks for the shortest length form, but neither decoder insists.
    @Test func aLongerLengthFormThanNeededIsRead() throws {
        let bytes = ByteBuffer(bytes: [0x81, 0x7E, 0x00, 0x02, 0x7B, 0x7D, 0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 1, 0x00])
        let nio = try Self.nios([bytes], maxFrameSize: 100)
        #expect(nio.frames.count == 2)
        #expect(Self.ours([bytes], maxFrameSize: 100) == nio.frames.map(Outcome.frame))
    }

    /// NIO's decoder stops at a frame over the size; ours refuses it, drops its payload as it arrives, and reads
    /// on (the device's answer to our close frame comes after it).
    @Test(arguments: [1, 7, 1 << 20])
    func aFrameOverTheSizeIsRefusedAndSkipped(readSize: Int) throws {
        let key = WebSocketMaskingKey([9, 8, 7, 6] as [UInt8])!
        let before = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: ByteBuffer(string: "before"))
        let tooLong = WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: ByteBuffer(repeating: 1, count: 1_001))
        let close = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: key, data: ByteBuffer(bytes: [0x03, 0xE8]))
        let reads = Self.reads(Self.wire([before, tooLong, close]), size: readSize)
        let nio = try Self.nios(reads, maxFrameSize: 1_000)
        #expect(nio.frames == [Cut(before)] && nio.error == .invalidFrameLength)
        #expect(Self.ours(reads, maxFrameSize: 1_000) == [.frame(Cut(before)), .refused(.tooLong), .frame(Cut(close))])
    }

    @Test func brokenControlFramesAreRefusedWhereNIOsDecoderThrows() throws {
        let fragmented = WebSocketFrame(fin: false, opcode: .ping, maskKey: nil, data: ByteBuffer(string: "p"))
        let long = WebSocketFrame(fin: true, opcode: .pong, maskKey: nil, data: ByteBuffer(repeating: 0, count: 126))
        let after = WebSocketFrame(fin: true, opcode: .text, maskKey: nil, data: ByteBuffer(string: "{}"))
        for (broken, refusal, error) in [(fragmented, InboundFrameParser.Refusal.fragmentedControlFrame, NIOWebSocketError.fragmentedControlFrame),
                                         (long, .longControlFrame, .multiByteControlFrameLength)] {
            let reads = [Self.wire([broken, after])]
            #expect(try Self.nios(reads, maxFrameSize: 1_000).error == error)
            #expect(Self.ours(reads, maxFrameSize: 1_000) == [.refused(refusal), .frame(Cut(after))])
        }
    }

    /// A 64-bit length beyond any size: refused, and everything after it is dropped.
    @Test func aLengthBeyondIntIsRefused() throws {
        let bytes = ByteBuffer(bytes: [0x82, 0xFF] + [UInt8](repeating: 0xFF, count: 8) + [1, 2, 3, 4] + [0x81, 0x00])
        #expect(try Self.nios([bytes], maxFrameSize: 1_000).error == .invalidFrameLength)
        #expect(Self.ours([bytes], maxFrameSize: 1_000) == [.refused(.tooLong)])
    }

    /// Reads that never end where a frame ends: what was cut is not kept (a read's worth and a frame at most).
    @Test func whatWasCutIsNotKept() {
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: WebSocketMaskingKey([1, 2, 3, 4] as [UInt8])!,
                                   data: ByteBuffer(repeating: 0x41, count: 94))
        let stream = Self.wire(Array(repeating: frame, count: 10_001))  // 100 bytes each
        var parser = InboundFrameParser(maxFrameSize: 1_000)
        var frames = 0
        var largest = 0
        // A first read of 99 bytes, then reads of 100: every read but the last ends a byte before a frame's end.
        let reads = [stream.getSlice(at: 0, length: 99)!] + Self.reads(stream.getSlice(at: 99, length: stream.readableBytes - 99)!, size: 100)
        for read in reads {
            parser.append(read)
            while case .frame = parser.next() { frames += 1 }
            largest = max(largest, parser.heldCapacity)
        }
        #expect(frames == 10_001)
        #expect(largest <= 1_024, "kept \(largest) bytes of storage")
    }

    /// Nothing is cut before a frame is whole, whichever part of its header or payload is missing.
    @Test func aPartialFrameWaits() {
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: WebSocketMaskingKey([1, 2, 3, 4] as [UInt8])!,
                                   data: ByteBuffer(repeating: 0x41, count: 300))
        let bytes = Self.wire([frame])
        for end in 0..<bytes.readableBytes {
            var parser = InboundFrameParser(maxFrameSize: 1_000)
            parser.append(bytes.getSlice(at: 0, length: end)!)
            #expect(parser.next() == nil, "cut from the first \(end) bytes")
        }
    }

    /// Random byte streams, mostly frame-shaped (any first byte, any length form, lengths around every limit, payloads
    /// cut short), in random reads: up to where NIO's decoder throws, the same frames; where it throws, the matching
    /// refusal. Seeded, so a failure repeats.
    @Test func agreesWithNIOsDecoderOnRandomStreams() throws {
        var random = Xorshift(state: 6455)
        var refusals: [InboundFrameParser.Refusal: Int] = [:]
        for round in 0..<2_000 {
            let maxFrameSize = [125, 1_000, 2_000].randomElement(using: &random)!
            let bytes = Self.randomStream(&random)
            var reads: [ByteBuffer] = []
            var at = 0
            while at < bytes.readableBytes {
                // Reads of a few bytes only for short streams: in a debug build, ByteBuffer takes microseconds a call.
                let sizes = switch bytes.readableBytes { case ..<300: [1, 2, 5]; case ..<2_000: [3, 9, 64]; default: [64, 1_000, 4_096] }
                let size = min(bytes.readableBytes - at, sizes.randomElement(using: &random)!)
                reads.append(bytes.getSlice(at: at, length: size)!)
                at += size
            }
            let nio = try Self.nios(reads, maxFrameSize: maxFrameSize)
            var expected = nio.frames.map(Outcome.frame)
            switch nio.error {
            case .invalidFrameLength: expected.append(.refused(.tooLong))
            case .fragmentedControlFrame: expected.append(.refused(.fragmentedControlFrame))
            case .multiByteControlFrameLength: expected.append(.refused(.longControlFrame))
            case nil: break
            }
            let ours = Self.ours(reads, maxFrameSize: maxFrameSize)
            // Compared outside `#expect`, which would describe every frame's bytes of every round.
            let agrees = Array(ours.prefix(expected.count)) == expected && (nio.error != nil || ours.count == expected.count)
            #expect(agrees, "round \(round)")
            if case .refused(let refusal) = expected.last { refusals[refusal, default: 0] += 1 }
        }
        // The streams reach every refusal often (and whole frames in the other rounds).
        #expect(refusals.count == 3 && refusals.values.allSatisfy { $0 >= 50 }, "\(refusals)")
    }

    static func randomStream(_ random: inout Xorshift) -> ByteBuffer {
        var bytes = ByteBuffer()
        for _ in 0..<Int.random(in: 1...6, using: &random) {
            bytes.writeInteger(UInt8.random(in: 0...255, using: &random))
            let mask: UInt8 = Bool.random(using: &random) ? 0x80 : 0
            let length = [0, 1, 125, 126, 127, 999, 1_000, 1_001, 2_001, 65_536, Int.random(in: 0...300, using: &random)]
                .randomElement(using: &random)!
            switch Int.random(in: 0..<8, using: &random) {
            case 0: bytes.writeMultipleIntegers(mask | 127, UInt64.random(in: 0...UInt64.max, using: &random))
            case 1: bytes.writeMultipleIntegers(mask | 126, UInt16(truncatingIfNeeded: length))
            case 2: bytes.writeMultipleIntegers(mask | 127, UInt64(length))
            default:
                if length < 126 { bytes.writeInteger(mask | UInt8(length)) }
                else { bytes.writeMultipleIntegers(mask | 126, UInt16(truncatingIfNeeded: length)) }
            }
            if mask != 0 { bytes.writeInteger(UInt32.random(in: 0...UInt32.max, using: &random)) }
            // The payload, sometimes cut short (the stream then ends inside it); the longest always are.
            let present = Int.random(in: 0..<10, using: &random) == 0 ? Int.random(in: 0...min(length, 400), using: &random) : min(length, 3_000)
            bytes.writeRepeatingByte(UInt8(truncatingIfNeeded: present), count: present)
            if present < length { break }
        }
        return bytes
    }

    /// xorshift64*: seeded, so that a failing round repeats.
    struct Xorshift: RandomNumberGenerator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 2_685_821_657_736_338_717
        }
    }
}
