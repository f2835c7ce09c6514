/// A snapshot of a ``DeviceClient``'s counters, see ``DeviceClient/stats``.
public struct DeviceClientStats: Sendable, Equatable {
    /// Messages (text and media) written to the gateway for the first time.
    public var sent: Int = 0
    /// Messages the gateway acknowledged.
    public var acked: Int = 0
    /// Messages the gateway refused with a `nack`.
    public var nacked: Int = 0
    /// Messages written again after a reconnect because they were not acknowledged.
    public var resent: Int = 0
    /// Commands answered (text response or media frame handed to the connection).
    public var commandsAnswered: Int = 0
    /// Connections established after the first one.
    public var reconnects: Int = 0
    /// The close code of the last connection that ended (1006 when lost without a close frame).
    public var lastCloseCode: UInt16? = nil
    /// Whether a connection is currently established (after `welcome`).
    public var connected: Bool = false

    /// Creates zeroed counters.
    public init() {}

    /// Adds every counter of `other` to these (for fleet totals); `lastCloseCode` and `connected` are kept.
    public mutating func add(_ other: DeviceClientStats) {
        self.sent += other.sent
        self.acked += other.acked
        self.nacked += other.nacked
        self.resent += other.resent
        self.commandsAnswered += other.commandsAnswered
        self.reconnects += other.reconnects
    }
}
