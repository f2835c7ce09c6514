/// `commands`: `default_timeout_ms` (int, 10000), `max_pending_per_device` (int, 32), `max_pending` (int, 10000).
public struct CommandsSection: Sendable {
    public var defaultTimeoutMs: Int
    public var maxPendingPerDevice: Int
    /// Queued commands of all devices together: requests for ever new device ids must not grow every gateway's
    /// mirror (and the broker's retained store) without bound.
    public var maxPending: Int

    /// Reads `commands.*` from `source`, recording problems there.
    public init(_ source: ConfigSource) {
        defaultTimeoutMs = source.int("commands.default_timeout_ms", default: 10000, in: 1...86_400_000)
        maxPendingPerDevice = source.int("commands.max_pending_per_device", default: 32, in: 1...10000)
        maxPending = source.int("commands.max_pending", default: 10000, in: 1...1_000_000)
    }
}
