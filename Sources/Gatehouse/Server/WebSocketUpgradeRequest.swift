import NIOCore
import NIOHTTP1

/// A WebSocket upgrade request read by hand, for the device connection's fast path (`DeviceUpgradeFastPath`).
///
/// It only recognises the plain case: `GET <path>[?query] HTTP/1.1`, header lines of token names and visible
/// values, an `Upgrade` that names `websocket`, one `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, and no body.
/// Everything else is `.other`, and NIO's HTTP parser and upgrader answer it as before; so this reader may be
/// stricter than NIO, never more lenient.
struct WebSocketUpgradeRequest {
    var head: HTTPRequestHead
    /// `Sec-WebSocket-Key`, for the `Sec-WebSocket-Accept` answer.
    var key: String
    /// Bytes of the request, its blank line included.
    var length: Int

    enum Scan {
        /// The head has not ended yet.
        case incomplete
        /// Not a plain WebSocket upgrade to the path: for NIO's parser.
        case other
        case upgrade(WebSocketUpgradeRequest)
    }

    /// Reads a request from the start of `buffer`'s readable bytes, for a target whose path is `path`. The head's
    /// end is searched for from `searchFrom` on (the caller knows it is not before).
    static func scan(_ buffer: ByteBuffer, path: String, searchFrom: Int = 0) -> Scan {
        buffer.withUnsafeReadableBytes { bytes in
            guard let end = headEnd(in: bytes, from: searchFrom) else { return .incomplete }
            var lines = Lines(bytes: UnsafeRawBufferPointer(rebasing: bytes[..<end]))
            guard let requestLine = lines.next(), let target = target(of: requestLine, path: path) else { return .other }
            var headers = HTTPHeaders()
            var upgradesToWebSocket = false
            var keys: [String] = []
            var versions: [String] = []
            while let line = lines.next() {
                guard let (name, value) = field(line) else { return .other }
                if named(name, "upgrade") {
                    upgradesToWebSocket = upgradesToWebSocket || value.split(separator: ",").contains {
                        $0.trimmingSpaces.lowercased() == "websocket"
                    }
                } else if named(name, "sec-websocket-key") {
                    keys.append(value)
                } else if named(name, "sec-websocket-version") {
                    versions.append(value)
                } else if named(name, "content-length") || named(name, "transfer-encoding") {
                    return .other
                }
                headers.add(name: String(decoding: name, as: UTF8.self), value: value)
            }
            // NIO's upgrader wants exactly one of each, not a list.
            guard upgradesToWebSocket, keys.count == 1, !keys[0].isEmpty, !keys[0].contains(","),
                  versions == ["13"] else { return .other }
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)
            return .upgrade(WebSocketUpgradeRequest(head: head, key: keys[0], length: end + 4))
        }
    }

    /// Where the blank line ending the head starts (the index of its first `\r\n\r\n` byte).
    private static func headEnd(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = start
        while index <= bytes.count - 4 {
            if bytes[index] == cr, bytes[index + 1] == lf, bytes[index + 2] == cr, bytes[index + 3] == lf { return index }
            index += 1
        }
        return nil
    }

    /// The request target of `GET <target> HTTP/1.1` when its path is `path`.
    private static func target(of line: UnsafeRawBufferPointer, path: String) -> String? {
        let prefix = "GET ".utf8, suffix = " HTTP/1.1".utf8
        guard line.count > prefix.count + suffix.count, line.starts(with: prefix), line.reversed().starts(with: suffix.reversed()) else {
            return nil
        }
        let target = UnsafeRawBufferPointer(rebasing: line[prefix.count..<(line.count - suffix.count)])
        guard target.allSatisfy({ $0 > space && $0 < delete }), target.starts(with: path.utf8) else { return nil }
        guard target.count == path.utf8.count || target[path.utf8.count] == UInt8(ascii: "?") else { return nil }
        return String(decoding: target, as: UTF8.self)
    }

    /// `name: value` with a token name and a value of visible characters, spaces and tabs (trimmed).
    private static func field(_ line: UnsafeRawBufferPointer) -> (UnsafeRawBufferPointer, String)? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        let value = UnsafeRawBufferPointer(rebasing: line[(colon + 1)...])
        guard name.allSatisfy(isTokenCharacter), value.allSatisfy({ ($0 >= space && $0 < delete) || $0 == tab }) else { return nil }
        return (name, String(decoding: value, as: UTF8.self).trimmingSpaces)
    }

    /// Whether the token `name` is `lowercase` in any case (`| 0x20` lowers ASCII letters and keeps `-` and digits).
    private static func named(_ name: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        let expected = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return name.count == expected.count && zip(name, expected).allSatisfy { $0 | 0x20 == $1 }
    }

    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// The head's lines, split at `\r\n`; a bare `\r` or `\n` inside a line makes that line fail its checks.
    private struct Lines {
        let bytes: UnsafeRawBufferPointer
        var start = 0

        mutating func next() -> UnsafeRawBufferPointer? {
            guard start < bytes.count else { return nil }
            var end = start
            while end + 1 < bytes.count, !(bytes[end] == cr && bytes[end + 1] == lf) { end += 1 }
            if end + 1 >= bytes.count { end = bytes.count }
            defer { start = end + 2 }
            return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        }
    }
}

private let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), delete: UInt8 = 0x7F

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
