/// `live` (PROTOCOL.md §8): `max_fps` (int, 10: the highest frame rate a camera is asked for), `idle_s` (int, 10:
/// seconds after the last viewer left before the camera is told to stop), `max_viewers` (int, 32: live viewers on
/// this gateway, WebSocket and MJPEG together, all cameras; 0 turns live view off), `publish_mqtt` (bool, false:
/// also publish live frames to `<base>/<dev>/media/live`). Read at startup; a reload names changes as needing a restart.
public struct LiveSection: Sendable {
    public var maxFPS: Int
    public var idleSeconds: Int
    public var maxViewers: Int
    public var publishMQTT: Bool

    /// Reads `live.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        maxFPS = source.int("live.max_fps", default: 10, in: 1...120)
        idleSeconds = source.seconds("live.idle_s", default: 10, in: 0...86400)
        maxViewers = source.int("live.max_viewers", default: 32, in: 0...100_000)
        publishMQTT = source.bool("live.publish_mqtt", default: false)
    }
}
