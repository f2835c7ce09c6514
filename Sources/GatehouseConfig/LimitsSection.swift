/// `limits`: `max_message_bytes` (size, 65536), `max_media_bytes` (size, 4194304), `max_bad_messages` (int,
/// 100 per 60 s), `max_connections` (int, 19000), `max_connects_per_s` (int, 500, whole gateway),
/// `max_connects_per_device_per_min` (int, 30, each device id: taken before the gateway-wide rate),
/// `max_pending_connections` (int, 512: connections not (yet) a device; the oldest is closed beyond),
/// `handshake_timeout_s` (int, 10), `max_messages_per_s` (int, 500 per device), `max_bytes_per_s` (size, 4MiB
/// per device), `max_state_bytes` (size, 65536: the merged reported state), `max_desired_bytes` (size, 16384: the
/// largest desired document's `data` as compact JSON), `max_control_frames_per_s` (int, 10 per device: pings and
/// pongs), `max_send_queue_bytes` (size, 1MiB per device: what waits to be written to it). Rates allow a burst of
/// two seconds' worth (the per-device connect rate: ten seconds' worth); 0 turns a rate limit off.
public struct LimitsSection: Sendable {
    public var maxMessageBytes: Int
    public var maxMediaBytes: Int
    public var maxBadMessages: Int
    public var maxConnections: Int
    public var maxConnectsPerSecond: Int
    public var handshakeTimeoutSeconds: Int
    public var maxMessagesPerSecond: Int
    public var maxBytesPerSecond: Int
    public var maxStateBytes: Int
    public var maxDesiredBytes: Int
    public var maxConnectsPerDevicePerMinute: Int
    public var maxPendingConnections: Int
    public var maxControlFramesPerSecond: Int
    public var maxSendQueueBytes: Int

    /// Reads `limits.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        maxMessageBytes = source.int("limits.max_message_bytes", default: 65536, in: 256...(16 << 20), units: ConfigSource.byteUnits)
        maxMediaBytes = source.int("limits.max_media_bytes", default: 4 << 20, in: 1024...(64 << 20), units: ConfigSource.byteUnits)
        maxBadMessages = source.int("limits.max_bad_messages", default: 100, in: 1...1_000_000)
        maxConnections = source.int("limits.max_connections", default: 19000, in: 1...1_000_000)
        maxConnectsPerSecond = source.int("limits.max_connects_per_s", default: 500, in: 0...1_000_000)
        handshakeTimeoutSeconds = source.int("limits.handshake_timeout_s", default: 10, in: 1...3600)
        maxMessagesPerSecond = source.int("limits.max_messages_per_s", default: 500, in: 0...10_000_000)
        maxBytesPerSecond = source.int("limits.max_bytes_per_s", default: 4 << 20, in: 0...(1 << 40), units: ConfigSource.byteUnits)
        maxStateBytes = source.int("limits.max_state_bytes", default: 65536, in: 256...(16 << 20), units: ConfigSource.byteUnits)
        maxDesiredBytes = source.int("limits.max_desired_bytes", default: 16384, in: 2...(16 << 20), units: ConfigSource.byteUnits)
        maxConnectsPerDevicePerMinute = source.int("limits.max_connects_per_device_per_min", default: 30, in: 0...1_000_000)
        maxPendingConnections = source.int("limits.max_pending_connections", default: 512, in: 1...1_000_000)
        maxControlFramesPerSecond = source.int("limits.max_control_frames_per_s", default: 10, in: 0...1_000_000)
        maxSendQueueBytes = source.int("limits.max_send_queue_bytes", default: 1 << 20, in: (64 << 10)...(1 << 30), units: ConfigSource.byteUnits)
    }
}
