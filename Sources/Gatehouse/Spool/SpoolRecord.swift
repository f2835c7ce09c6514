/// One QoS 1 publish kept in the spool until the broker acknowledges it.
struct SpoolEntry: Sendable, Equatable {
    var topic: String
    var payload: [UInt8]
    var retain: Bool = false
    /// MQTT 5 Correlation Data (a command response sent to a request's Response Topic).
    var correlationData: [UInt8]? = nil
    /// When the gateway took the message (Unix ms); entries older than `spool.max_age` are dropped.
    var receivedAt: Int64
}

/// The on-disk framing of a spool entry: a 12-byte header (magic, body length, CRC-32 of the body) and
/// the body. The magic and CRC let recovery tell a good record from a torn or corrupt one after a power cut.
///
/// Body: receivedAt (Int64 LE), flags (UInt8: 1 = retain, 2 = correlation data), topic length (UInt16 LE),
/// topic, [correlation length (UInt16 LE), correlation data], payload (the rest).
enum SpoolRecord {
    static let magic: [UInt8] = Array("GHS1".utf8)
    static let headerBytes = 12
    /// Larger bodies are treated as corruption (no device message comes near it).
    static let maxBodyBytes = 64 << 20

    /// The record for `entry`, appended to `buffer`.
    static func encode(_ entry: SpoolEntry, into buffer: inout [UInt8]) {
        var body: [UInt8] = []
        body.reserveCapacity(entry.topic.utf8.count + entry.payload.count + 16)
        append(UInt64(bitPattern: entry.receivedAt), bytes: 8, to: &body)
        body.append((entry.retain ? 1 : 0) | (entry.correlationData != nil ? 2 : 0))
        append(UInt64(entry.topic.utf8.count), bytes: 2, to: &body)
        body.append(contentsOf: entry.topic.utf8)
        if let correlation = entry.correlationData {
            append(UInt64(correlation.count), bytes: 2, to: &body)
            body.append(contentsOf: correlation)
        }
        body.append(contentsOf: entry.payload)
        buffer.append(contentsOf: magic)
        append(UInt64(body.count), bytes: 4, to: &buffer)
        append(UInt64(CRC32.checksum(body)), bytes: 4, to: &buffer)
        buffer.append(contentsOf: body)
    }

    /// What is found at one offset of a segment.
    enum Decoded: Equatable {
        /// A good record of `size` bytes (header included).
        case entry(SpoolEntry, size: Int)
        /// The bytes end inside the record (a torn write, or data not yet read).
        case incomplete
        /// Not a record: wrong magic, impossible length, bad checksum or malformed body.
        case corrupt
    }

    static func decode(_ bytes: ArraySlice<UInt8>) -> Decoded {
        guard bytes.count >= headerBytes else {
            return bytes.elementsEqual(magic.prefix(bytes.count)) ? .incomplete : .corrupt
        }
        let start = bytes.startIndex
        guard bytes[start..<start + 4].elementsEqual(magic) else { return .corrupt }
        let length = Int(bodyLength(bytes))
        guard length >= 11, length <= maxBodyBytes else { return .corrupt }
        guard bytes.count >= headerBytes + length else { return .incomplete }
        let body = bytes[(start + headerBytes)..<(start + headerBytes + length)]
        guard CRC32.checksum(body) == UInt32(read(bytes, at: start + 8, bytes: 4)), let entry = entry(from: body) else {
            return .corrupt
        }
        return .entry(entry, size: headerBytes + length)
    }

    /// The body length a header announces (the header must be complete).
    static func bodyLength(_ bytes: ArraySlice<UInt8>) -> UInt64 { read(bytes, at: bytes.startIndex + 4, bytes: 4) }

    private static func entry(from body: ArraySlice<UInt8>) -> SpoolEntry? {
        var cursor = body.startIndex
        func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard body.endIndex - cursor >= count else { return nil }
            defer { cursor += count }
            return body[cursor..<cursor + count]
        }
        guard let time = take(8), let flags = take(1)?.first, let topicLength = take(2),
              let topic = take(Int(read(topicLength, at: topicLength.startIndex, bytes: 2)))
        else { return nil }
        var correlation: [UInt8]?
        if flags & 2 != 0 {
            guard let length = take(2), let data = take(Int(read(length, at: length.startIndex, bytes: 2))) else { return nil }
            correlation = Array(data)
        }
        guard let topicText = String(validating: topic, as: UTF8.self) else { return nil }
        return SpoolEntry(
            topic: topicText, payload: Array(body[cursor...]), retain: flags & 1 != 0, correlationData: correlation,
            receivedAt: Int64(bitPattern: read(time, at: time.startIndex, bytes: 8)))
    }

    private static func append(_ value: UInt64, bytes: Int, to buffer: inout [UInt8]) {
        for index in 0..<bytes { buffer.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }

    private static func read(_ bytes: ArraySlice<UInt8>, at offset: Int, bytes count: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<count { value |= UInt64(bytes[offset + index]) << (8 * index) }
        return value
    }
}

extension SpoolRecord {
    /// The whole records at the start of `bytes`, which were read at `offset` of a segment whose durable data
    /// ends at `durableEnd`: at most `limit`, each with where it ends in the segment. `damaged` when they stop
    /// at a spot that holds no good record; a record that continues past `bytes` is left for the next read.
    static func decodeRun(
        _ bytes: [UInt8], at offset: Int, durableEnd: Int, limit: Int
    ) -> (found: [(entry: SpoolEntry, end: Int)], damaged: Bool) {
        var found: [(entry: SpoolEntry, end: Int)] = []
        var cursor = 0
        while found.count < limit, cursor < bytes.count {
            switch decode(bytes[cursor...]) {
            case .entry(let entry, let size):
                cursor += size
                found.append((entry, offset + cursor))
            case .incomplete where offset + bytes.count < durableEnd:
                return (found, false)  // the record continues past this chunk: read it next time
            case .incomplete, .corrupt:
                return (found, true)
            }
        }
        return (found, false)
    }
}

/// CRC-32 (IEEE 802.3, as zlib and gzip compute it). Small enough to keep here rather than reach into a
/// dependency's internal zlib module.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
