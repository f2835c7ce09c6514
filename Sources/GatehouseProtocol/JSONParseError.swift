/// Why a JSON text was refused, and where.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, in words.
    public var message: String
    /// The byte offset in the input at which the problem was found.
    public var offset: Int

    /// Creates an error.
    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    /// The message with its offset.
    public var description: String { "\(message) at byte \(offset)" }
}
