/// Why a device token was refused.
public struct TokenError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure, to switch on.
    public enum Code: Sendable {
        /// Not three base64url parts, or a header or claims that are not the expected JSON.
        case malformed
        /// `alg` is not `HS256` (including `none` and a missing `alg`).
        case unsupportedAlgorithm
        /// The signature does not match any usable key.
        case badSignature
        /// now ≥ `exp`.
        case expired
        /// now < `nbf`.
        case notYetValid
        /// `sub` is not a valid device id.
        case invalidSubject
        /// The `kid` names no configured key, or no key is configured.
        case unknownKey
    }

    /// The kind of failure.
    public var code: Code
    /// What is wrong, in words.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
