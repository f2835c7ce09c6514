/// Why a field of a JSON object does not have the expected form.
struct FieldError: Error {
    var message: String
}

/// Typed field access for message parsing. "Optional" accessors treat `null` like an absent key.
extension JSONObject {
    func requiredString(_ key: String) throws(FieldError) -> String {
        guard let value = try optionalString(key) else { throw FieldError(message: "'\(key)' is required") }
        return value
    }

    func optionalString(_ key: String) throws(FieldError) -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw FieldError(message: "'\(key)' must be a string")
        }
    }

    func requiredObject(_ key: String) throws(FieldError) -> JSONObject {
        guard let value = try optionalObject(key) else { throw FieldError(message: "'\(key)' is required") }
        return value
    }

    func optionalObject(_ key: String) throws(FieldError) -> JSONObject? {
        switch self[key] {
        case nil, .null?: return nil
        case .object(let value)?: return value
        default: throw FieldError(message: "'\(key)' must be an object")
        }
    }

    func requiredInt64(_ key: String) throws(FieldError) -> Int64 {
        guard let value = try optionalInt64(key) else { throw FieldError(message: "'\(key)' is required") }
        return value
    }

    func optionalInt64(_ key: String) throws(FieldError) -> Int64? {
        switch self[key] {
        case nil, .null?: return nil
        case .number(let number)?:
            guard let value = number.int64Value else { throw FieldError(message: "'\(key)' must be an integer") }
            return value
        default: throw FieldError(message: "'\(key)' must be an integer")
        }
    }

    func requiredInt(_ key: String) throws(FieldError) -> Int {
        let value = try requiredInt64(key)
        guard let int = Int(exactly: value) else { throw FieldError(message: "'\(key)' is out of range") }
        return int
    }

    /// A `seq`-style unsigned integer: plain digits, `0...2^64-1`.
    func requiredUInt64(_ key: String) throws(FieldError) -> UInt64 {
        guard case .number(let number)? = self[key], number.isUnsignedDigits, let value = UInt64(number.text) else {
            throw FieldError(message: "'\(key)' must be an integer from 0 to 18446744073709551615")
        }
        return value
    }
}
