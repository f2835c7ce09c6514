/// An error thrown by ``DeviceClient``; switch on ``code``.
public struct DeviceClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Sendable, Equatable {
        /// The client has stopped (its `run()` returned or threw); nothing more can be sent.
        case stopped
        /// `run()` was called while the client was already running or had run before.
        case alreadyRunning
        /// A fire-and-forget or media message could not be written: there is no connection.
        case notConnected
        /// The encoded message is larger than the gateway's `max_message_bytes`.
        case messageTooBig
        /// The gateway closed the connection with a code the reconnect policy treats as final
        /// (by default 4000 replaced, 4001 token expired, 1008 policy).
        case closedByGateway(UInt16)
        /// The gateway refused the WebSocket upgrade (bad token, wrong path, refused subprotocol)
        /// and the policy says not to retry.
        case upgradeRefused
        /// The configured URL cannot be used.
        case invalidURL
        /// The gateway broke the protocol (e.g. the first message was not `welcome`, or none came in time);
        /// the connection is dropped and retried.
        case protocolViolation
    }

    /// What went wrong.
    public var code: Code
    /// A message that tells the user what to do.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The message, prefixed with the code.
    public var description: String { "\(self.code): \(self.message)" }
}
