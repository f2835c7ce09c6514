/// Why a device message (text or binary frame) is malformed.
///
/// Answered with a `nack` `bad_message` for ``seq`` when the message carried a readable one,
/// otherwise with an `error` frame.
public struct BadMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message's `seq`, when it had a valid one.
    public var seq: UInt64?
    /// What is wrong, suitable for the `message` of the answer.
    public var message: String

    /// Creates an error.
    public init(seq: UInt64? = nil, message: String) {
        self.seq = seq
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
