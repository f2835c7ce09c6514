/// The gateway's `live` message to a camera (PROTOCOL.md §8): start streaming at about `fps` frames per
/// second, or stop. Kept apart from ``GatewayMessage`` because only cameras act on it.
public enum LiveControl: Sendable, Equatable {
    /// `{"type":"live","action":"start","fps":n}`
    case start(fps: Double)
    /// `{"type":"live","action":"stop"}`
    case stop

    /// The media `stream` name of live frames.
    public static let stream = "live"

    /// Compact JSON in the key order of PROTOCOL.md 3.1; a whole `fps` is written as an integer.
    public func encoded() -> [UInt8] {
        switch self {
        case .start(let fps):
            let number = fps == fps.rounded() && fps < 1e15 ? String(Int64(fps)) : (JSONNumber(fps) ?? JSONNumber(1)).text
            return Array(#"{"type":"live","action":"start","fps":\#(number)}"#.utf8)
        case .stop:
            return Array(#"{"type":"live","action":"stop"}"#.utf8)
        }
    }

    /// Reads a gateway text frame; nil when it is not a well-formed `live` message (a `start` needs a
    /// positive `fps`).
    public static func parse(_ bytes: [UInt8]) -> LiveControl? {
        guard case .object(let object)? = try? JSONValue(parsing: bytes),
              object["type"]?.stringValue == "live" else { return nil }
        switch object["action"]?.stringValue {
        case "start":
            guard let fps = object["fps"]?.numberValue?.doubleValue, fps > 0, fps.isFinite else { return nil }
            return .start(fps: fps)
        case "stop":
            return .stop
        default:
            return nil
        }
    }
}
