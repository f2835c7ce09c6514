extension JSONValue {
    /// The compact JSON text (no spaces) as UTF-8 bytes.
    ///
    /// Strings are escaped per RFC 8259: `"` and `\` and control characters below U+0020
    /// (`\n`, `\t`, ... or `\u00XX`); everything else, including non-ASCII, is written as UTF-8.
    /// Numbers are written exactly as their ``JSONNumber/text``; object keys in insertion order.
    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64)
        serialize(into: &buffer)
        return buffer
    }

    /// The compact JSON text as a `String`; see ``serialized()``.
    public func serializedString() -> String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Appends the compact JSON text to `buffer`; see ``serialized()``.
    public func serialize(into buffer: inout [UInt8]) {
        switch self {
        case .null:
            buffer.append(contentsOf: "null".utf8)
        case .bool(let value):
            buffer.append(contentsOf: value ? "true".utf8 : "false".utf8)
        case .number(let number):
            buffer.append(contentsOf: number.text.utf8)
        case .string(let string):
            JSONWriter.appendString(string, to: &buffer)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { buffer.append(UInt8(ascii: ",")) }
                first = false
                element.serialize(into: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let object):
            object.serialize(into: &buffer)
        }
    }
}

extension JSONObject {
    /// The compact JSON text of the object as UTF-8 bytes.
    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64)
        serialize(into: &buffer)
        return buffer
    }

    /// Appends the compact JSON text of the object to `buffer`.
    public func serialize(into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "{"))
        var first = true
        for entry in entries {
            if !first { buffer.append(UInt8(ascii: ",")) }
            first = false
            JSONWriter.appendString(entry.key, to: &buffer)
            buffer.append(UInt8(ascii: ":"))
            entry.value.serialize(into: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }
}
