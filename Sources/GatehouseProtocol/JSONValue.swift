/// A JSON value (RFC 8259).
///
/// Numbers keep their source text (see ``JSONNumber``); objects keep insertion order
/// (see ``JSONObject``). Parse with ``init(parsing:maxDepth:)-(UnsafeRawBufferPointer,_)``,
/// write with ``serialized()``.
///
/// Not `indirect`: arrays and objects hold their elements in heap storage already, and an indirect enum
/// boxes every value (one allocation per number, string or bool parsed).
public enum JSONValue: Sendable, Equatable, CustomStringConvertible,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, kept as text.
    case number(JSONNumber)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object.
    case object(JSONObject)

    /// A number value from an integer.
    public static func number(_ value: Int) -> JSONValue {
        .number(JSONNumber(value))
    }

    /// A number value from a 64-bit integer.
    public static func number(_ value: Int64) -> JSONValue {
        .number(JSONNumber(value))
    }

    /// A number value from an unsigned 64-bit integer.
    public static func number(_ value: UInt64) -> JSONValue {
        .number(JSONNumber(value))
    }

    /// The member `key` when this is an object that has it; otherwise `nil`.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[key]
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// The object, when this is an object.
    public var objectValue: JSONObject? {
        guard case .object(let value) = self else { return nil }
        return value
    }

    /// The number, when this is a number.
    public var numberValue: JSONNumber? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    /// The boolean, when this is `true` or `false`.
    public var boolValue: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? {
        guard case .array(let value) = self else { return nil }
        return value
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The compact JSON text of the value.
    public var description: String { serializedString() }

    /// Creates a string value.
    public init(stringLiteral value: String) {
        self = .string(value)
    }

    /// Creates a number value.
    public init(integerLiteral value: Int) {
        self = .number(JSONNumber(value))
    }

    /// Creates a number value; the literal must be finite.
    public init(floatLiteral value: Double) {
        guard let number = JSONNumber(value) else {
            preconditionFailure("JSON has no form for \(value)")
        }
        self = .number(number)
    }

    /// Creates `true` or `false`.
    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }

    /// Creates `null`.
    public init(nilLiteral: ()) {
        self = .null
    }

    /// Creates an array value.
    public init(arrayLiteral elements: JSONValue...) {
        self = .array(elements)
    }

    /// Creates an object value; when a key repeats, the last value wins.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}
