/// An HMAC key that signs and verifies device tokens.
public struct FleetKey: Sendable {
    /// The key id, matched against a token's `kid` header; `nil` for an unnamed key.
    public let id: String?
    /// The HMAC-SHA256 key bytes.
    public let secret: [UInt8]

    /// A key from the contents of a key file (`auth.key_file`): exactly one trailing `\n`,
    /// if any, is removed (a `\r` before it stays part of the key).
    public init(id: String? = nil, fileContents: [UInt8]) {
        var secret = fileContents
        if secret.last == UInt8(ascii: "\n") {
            secret.removeLast()
        }
        self.init(id: id, secret: secret)
    }

    /// A key from its exact secret bytes.
    public init(id: String? = nil, secret: [UInt8]) {
        self.id = id
        self.secret = secret
    }

    /// The shortest secret accepted (PROTOCOL.md section 2): an empty or one-character key would make every
    /// token forgeable.
    public static let minimumLength = 16

    /// Why a secret of `length` bytes cannot be a fleet key, or nil when it can.
    public static func weakness(length: Int) -> String? {
        guard length < minimumLength else { return nil }
        let held = length == 0 ? "holds no key (it is empty, or only a newline)" : "holds only \(length) byte\(length == 1 ? "" : "s")"
        return "\(held); a fleet key needs at least \(minimumLength) bytes"
    }
}
