/// The gateway's `welcome`, the first message of every connection.
public struct DeviceWelcome: Sendable, Equatable {
    /// The device id the gateway took from the token.
    public var device: String
    /// The id of the gateway holding the connection.
    public var gateway: String
    /// The session number; it grows with every connection of this device.
    public var session: Int64
    /// Seconds between the gateway's pings; a device silent for twice this is dropped.
    public var heartbeatSeconds: Int
    /// The largest text message the gateway accepts, in bytes.
    public var maxMessageBytes: Int

    /// Creates a welcome.
    public init(device: String, gateway: String, session: Int64, heartbeatSeconds: Int, maxMessageBytes: Int) {
        self.device = device
        self.gateway = gateway
        self.session = session
        self.heartbeatSeconds = heartbeatSeconds
        self.maxMessageBytes = maxMessageBytes
    }
}
