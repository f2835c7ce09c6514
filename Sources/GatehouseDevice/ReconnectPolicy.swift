/// When ``DeviceClient/run()`` gives up instead of reconnecting.
public struct ReconnectPolicy: Sendable, Equatable {
    /// Close codes after which the client stops: `run()` throws ``DeviceClientError/Code/closedByGateway(_:)``.
    ///
    /// Default: 4000 (replaced by a newer connection of the same device: reconnecting would fight it),
    /// 4001 (token expired: a new token is needed) and 1008 (policy: revoked or kicked).
    /// Every other close (1001 gateway shutdown, 1006 connection lost, ...) and network errors are retried.
    public var stopOnCloseCodes: Set<UInt16>
    /// Whether a refused WebSocket upgrade (HTTP 401/400/404) stops the client. Default false:
    /// the gateway may be restarting or the revocation list may change, so it is retried with backoff.
    public var stopOnUpgradeRefused: Bool

    /// Creates a policy.
    public init(stopOnCloseCodes: Set<UInt16> = [4000, 4001, 1008], stopOnUpgradeRefused: Bool = false) {
        self.stopOnCloseCodes = stopOnCloseCodes
        self.stopOnUpgradeRefused = stopOnUpgradeRefused
    }

    /// Reconnect after everything, until the task is cancelled.
    public static var always: ReconnectPolicy { .init(stopOnCloseCodes: [], stopOnUpgradeRefused: false) }
}
