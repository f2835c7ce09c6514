/// Something that happened to a ``DeviceClient``'s connection, published on ``DeviceClient/events``.
public enum DeviceEvent: Sendable, Equatable {
    /// A connection was established and the gateway's `welcome` arrived.
    case connected(DeviceWelcome)
    /// The gateway sent an `error` frame (e.g. `bad_message` for a message without `seq`).
    case gatewayError(code: String, message: String)
    /// The connection ended or could not be established.
    ///
    /// `closeCode` is the WebSocket close code the gateway sent, or 1006 when the connection was lost
    /// without one, or nil when no connection was made. `reconnectIn` is nil when the client stops.
    case disconnected(closeCode: UInt16?, reason: String, reconnectIn: Duration?)
}
