/// An error from the MQTT client, with a `code` to switch on and a message meant for people.
///
/// The broker's MQTT 5 reason code and libmosquitto's result number are separate code spaces (0x87 is
/// "not authorized", 7 is "connection lost"), so they live in separate fields; at most one of them is set.
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
        /// The connection a QoS 1 publish went out on ended before the broker answered: the broker may or may not have
        /// it. The client does not send it again (see `MosquittoClient.publish`).
        case connectionLost
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
    /// The MQTT 5 reason code the broker answered with (CONNACK, PUBACK, SUBACK, DISCONNECT), when there is one.
    public var reasonCode: MQTTReasonCode?
    /// The libmosquitto result number behind the failure (a failed call, a broken connection), when there is one.
    public var resultCode: MosquittoResultCode?

    /// Creates an error.
    public init(code: Code, message: String, reasonCode: MQTTReasonCode? = nil, resultCode: MosquittoResultCode? = nil) {
        self.code = code
        self.message = message
        self.reasonCode = reasonCode
        self.resultCode = resultCode
    }

    /// True when the broker refused a publish for a reason a retry of the same message cannot change
    /// (see ``MQTTReasonCode/isPermanentPublishRejection``); false for every other error, including a
    /// rejection that may pass later (quota exceeded, unspecified error).
    public var isPermanentRejection: Bool {
        code == .publishRejected && reasonCode?.isPermanentPublishRejection == true
    }

    /// The message.
    public var description: String { message }
}
