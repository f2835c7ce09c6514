import Foundation
import HTTPTypes
import NIOHTTP1

/// What a live-view request asks for, read from its target and headers (PROTOCOL.md §8): the device after
/// `/v1/live/`, the token (an `Authorization: Bearer` header wins over `?token=`), and `?fps=`.
struct ViewerRequest: Sendable, Equatable {
    static let prefix = "/v1/live/"
    static let mjpegSuffix = ".mjpeg"

    /// The device id as written in the path (not validated yet).
    var device: String
    var token: String?
    /// The viewer's `?fps=`; nil when missing or unreadable.
    var fps: Double?

    /// Reads a WebSocket upgrade: everything after `/v1/live/` is the device id (ids may end in `.mjpeg`).
    /// Nil for another path.
    init?(webSocketTarget target: String, authorization: String?) {
        guard let (path, query) = Self.split(target), path.hasPrefix(Self.prefix) else { return nil }
        self.init(device: String(path.dropFirst(Self.prefix.count)), query: query, authorization: authorization)
    }

    /// Reads a plain GET: only `/v1/live/<dev>.mjpeg` is an MJPEG stream. Nil for another path.
    init?(mjpegTarget target: String, authorization: String?) {
        guard let (path, query) = Self.split(target), path.hasPrefix(Self.prefix), path.hasSuffix(Self.mjpegSuffix) else { return nil }
        let device = path.dropFirst(Self.prefix.count).dropLast(Self.mjpegSuffix.count)
        self.init(device: String(device), query: query, authorization: authorization)
    }

    private init(device: String, query: Substring?, authorization: String?) {
        self.device = device
        let parameters = Self.parameters(query)
        token = bearerToken(in: authorization) ?? parameters["token"]
        fps = parameters["fps"].flatMap(Double.init).flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
    }

    private static func split(_ target: String) -> (Substring, Substring?)? {
        guard let mark = target.firstIndex(of: "?") else { return (target[...], nil) }
        return (target[..<mark], target[target.index(after: mark)...])
    }

    /// The first value of each query parameter, percent-decoded.
    private static func parameters(_ query: Substring?) -> [String: String] {
        var result: [String: String] = [:]
        for pair in query?.split(separator: "&") ?? [] {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            guard result[name] == nil, parts.count == 2 else { continue }
            result[name] = String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return result
    }
}
