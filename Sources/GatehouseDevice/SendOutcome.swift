/// How the gateway answered a message sent with ``DeviceClient/send(_:acknowledged:)``.
public enum SendOutcome: Sendable, Equatable {
    /// The gateway acknowledged the message: it is published or durably spooled.
    case acked
    /// The gateway refused the message.
    ///
    /// `code` is one of the wire `nack` codes (`bad_message`, `unknown_id`, `rate_limited`,
    /// `spool_full`, `broker_unavailable`, `broker_rejected`); compare with `NackCode.rawValue`.
    case nacked(code: String, message: String)
    /// The message was written without a `seq` (fire-and-forget); the gateway does not answer it.
    case written
}
