/// An error from the MQTT client, with a `code` to switch on and a message meant for people.
public struct MosquittoError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure happened.
    public enum Code: Sendable, Equatable {
        /// The broker URL could not be parsed.
        case invalidURL
        /// The broker answered but refused the connection (bad credentials, not authorised, ...).
        case connectionRefused
        /// The broker could not be reached at the TCP (or DNS/TLS) level.
        case unreachable
        /// The operation needs a connection and there is none.
        case notConnected
        /// The broker answered a QoS 1 publish with a failure reason code (>= 0x80).
        case publishRejected
        /// The broker refused at least one filter of a subscription.
        case subscribeRejected
        /// The operation did not finish in time.
        case timeout
        /// libmosquitto reported a protocol violation.
        case protocolError
        /// The client was stopped.
        case closed
        /// Anything else (invalid argument, out of memory, TLS set-up, ...).
        case other
    }

    /// What kind of failure happened.
    public var code: Code
    /// What went wrong, in words a user can act on.
    public var message: String
    /// The MQTT 5 reason code or libmosquitto error number behind the failure, when there is one.
    public var reasonCode: Int32?

    /// Creates an error.
    public init(code: Code, message: String, reasonCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.reasonCode = reasonCode
    }

    /// The message.
    public var description: String { message }
}
