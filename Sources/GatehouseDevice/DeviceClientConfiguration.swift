public import GatehouseProtocol

/// How a ``DeviceClient`` connects to its gateway.
public struct DeviceClientConfiguration: Sendable {
    /// Where the device token goes in the upgrade request.
    public enum TokenPlacement: Sendable, Equatable {
        /// `Authorization: Bearer <jwt>` (the default).
        case authorizationHeader
        /// `?token=<jwt>` on the URL, for stacks that cannot set headers.
        case queryParameter
    }

    /// The gateway endpoint, `ws://host:port/v1/connect` or `wss://…`.
    public var url: String
    /// The device token (an HS256 JWT whose `sub` is the device id).
    public var token: String
    /// Where the token is sent. Default ``TokenPlacement/authorizationHeader``.
    public var tokenPlacement: TokenPlacement = .authorizationHeader
    /// Whether `Sec-WebSocket-Protocol: gatehouse.v1` is offered. Default true.
    public var offerSubprotocol: Bool = true
    /// Whether permessage-deflate is offered. Default false.
    public var compression: Bool = false
    /// How many acknowledged messages may wait for their `ack`/`nack` at once; further sends wait. Default 64.
    public var window: Int = 64
    /// The wait between reconnect attempts.
    public var backoff: ReconnectBackoff = .init()
    /// Which closes end ``DeviceClient/run()`` instead of reconnecting.
    public var reconnectPolicy: ReconnectPolicy = .init()
    /// A `hello` sent (acknowledged) first on every connection, so the gateway knows kind and capabilities.
    public var hello: DeviceHello? = nil
    /// The largest WebSocket frame sent or received. Default 4 MiB + 64 KiB: a full media frame with its header.
    public var maxFrameSize: Int = 4 * 1024 * 1024 + 64 * 1024
    /// The interval of the client's own pings, which detect a dead gateway; nil disables them
    /// (the gateway's pings are answered either way). Default 30 s.
    public var pingInterval: Duration? = .seconds(30)
    /// How long to wait for `welcome` after the upgrade before giving up on the connection. Default 10 s.
    public var welcomeTimeout: Duration = .seconds(10)
    /// How long to wait for the gateway to answer a close frame. Default 5 s.
    public var closeTimeout: Duration = .seconds(5)

    /// Creates a configuration with the defaults above.
    public init(url: String, token: String) {
        self.url = url
        self.token = token
    }

    /// The subprotocol this client speaks.
    public static let subprotocol = "gatehouse.v1"
}
