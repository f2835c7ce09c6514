/// A command id: a JSON integer (at most 128 characters: it is a topic level) or a string matching
/// `^[A-Za-z0-9._:-]{1,128}$`.
///
/// The id is echoed back in its original JSON type (`42` stays a number, `"c-81f2"` a string)
/// and used as the topic level of `pending/<id>` and as a map key through ``text``.
public struct CommandID: Sendable, Hashable, CustomStringConvertible {
    /// The id as JSON: a ``JSONValue/number(_:)-(JSONNumber)`` (integer) or a ``JSONValue/string(_:)``.
    public let json: JSONValue
    /// The id as text: `42` or `c-81f2`.
    public let text: String

    /// Accepts an integer written as plain digits, negative ones with their `-` (at most 128 characters), or a string
    /// matching ``Identifiers/isValidCommandID(_:)``; anything else gives `nil` (a fraction or an exponent too).
    public init?(json: JSONValue) {
        switch json {
        case .number(let number):
            guard number.isInteger, number.text.utf8.count <= 128 else { return nil }
            self.text = number.text
        case .string(let string):
            guard Identifiers.isValidCommandID(string) else { return nil }
            self.text = string
        default:
            return nil
        }
        self.json = json
    }

    /// An id made by the gateway (a string); it must satisfy ``Identifiers/isValidCommandID(_:)``.
    public init(generated: String) {
        precondition(Identifiers.isValidCommandID(generated), "invalid generated command id '\(generated)'")
        self.json = .string(generated)
        self.text = generated
    }

    /// The id as text.
    public var description: String { text }

    /// Whether both ids are the same JSON value (`42` and `"42"` differ).
    public static func == (lhs: CommandID, rhs: CommandID) -> Bool {
        lhs.text == rhs.text && lhs.isNumber == rhs.isNumber
    }

    /// Hashes the text and the JSON type.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(text)
        hasher.combine(isNumber)
    }

    private var isNumber: Bool {
        if case .number = json { return true }
        return false
    }
}
