/// What a camera does when the gateway asks for live frames (PROTOCOL.md §8). Pass one to
/// ``DeviceClient/init(configuration:logger:commandHandler:liveHandler:)`` and declare
/// `capabilities.live` in the `hello` (``DeviceHello/liveCapability(maxFPS:)``).
///
/// ```swift
/// let live = LiveStreamHandler(
///     start: { fps in camera.stream(fps: fps) },   // then call client.sendLiveFrame(jpeg:) per frame
///     stop: { camera.stopStreaming() }
/// )
/// ```
///
/// `start` is called on the gateway's `start` (again, with a higher rate, when a later viewer asks more);
/// `stop` on the gateway's `stop` and when the connection ends while streaming (after a reconnect the gateway
/// sends `start` again if someone still watches). Both are called from the client's reader and must not block.
public struct LiveStreamHandler: Sendable {
    /// Start (or change the rate of) the stream: about this many frames per second.
    public var start: @Sendable (_ fps: Double) -> Void
    /// Stop streaming.
    public var stop: @Sendable () -> Void

    /// Creates a handler.
    public init(start: @escaping @Sendable (_ fps: Double) -> Void, stop: @escaping @Sendable () -> Void) {
        self.start = start
        self.stop = stop
    }
}

extension DeviceHello {
    /// `{"max_fps": n}` (or `{}` without a limit), the value of `capabilities.live`.
    public static func liveCapability(maxFPS: Double? = nil) -> JSONValue {
        guard let maxFPS, maxFPS > 0, maxFPS.isFinite else { return .object(JSONObject()) }
        let number = maxFPS == maxFPS.rounded() && maxFPS < 1e15 ? JSONNumber(Int64(maxFPS)) : JSONNumber(maxFPS)!
        return .object(JSONObject([("max_fps", .number(number))]))
    }
}
