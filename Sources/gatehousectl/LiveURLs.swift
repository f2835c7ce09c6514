import Foundation
import GatehouseConfig
import GatehouseProtocol

/// The live-view URLs of a camera for a viewer token (PROTOCOL.md §8), as `gatehousectl token issue --scope view`
/// prints them: the WebSocket stream and the MJPEG stream (for `<img>`, Home Assistant's MJPEG camera, go2rtc, curl).
struct LiveURLs {
    /// `http://host:port` (or `https://` with TLS); the WebSocket URL uses `ws://`/`wss://`.
    var base: String
    var token: String

    /// The base URL from `--url`, else from the config's `gateway.listen` (a wildcard address becomes 127.0.0.1).
    static func base(option: String?, config: String?) -> String {
        if let option { return option.hasSuffix("/") ? String(option.dropLast()) : option }
        guard let file = try? GatewayConfigFile.load(option: config), file.isFromFile else { return "http://127.0.0.1:8080" }
        let gateway = file.config.gateway
        let host = ["0.0.0.0", "::", "[::]", ""].contains(gateway.host) ? "127.0.0.1" : (gateway.host.contains(":") ? "[\(gateway.host)]" : gateway.host)
        return "\(gateway.tls == nil ? "http" : "https")://\(host):\(gateway.port)"
    }

    func webSocket(_ device: String) -> String {
        let ws = base.hasPrefix("https://") ? "wss://" + base.dropFirst(8) : "ws://" + base.dropFirst(base.hasPrefix("http://") ? 7 : 0)
        return "\(ws)/v1/live/\(device)?token=\(token)"
    }

    func mjpeg(_ device: String) -> String {
        "\(base)/v1/live/\(device).mjpeg?token=\(token)"
    }
}
