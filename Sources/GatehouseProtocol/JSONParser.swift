/// A strict, single-pass RFC 8259 parser over raw bytes.
///
/// Refuses everything the RFC does not allow (`NaN`, `Infinity`, leading zeros, `+1`, `.5`,
/// trailing commas, raw control characters in strings, trailing data) plus what JSON allows
/// but the gateway must never publish: invalid UTF-8, lone or mis-paired UTF-16 surrogate
/// escapes, and numbers that overflow a `Double`.
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private let maxDepth: Int
    private var index = 0
    private var depth = 0
    /// Reused for strings that contain escapes.
    private var scratch: [UInt8] = []
    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Parses the whole input as one JSON value surrounded by optional whitespace.
    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard index == bytes.count else { throw failure("unexpected data after the JSON value") }
        return value
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard index < bytes.count else { throw failure("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return try parseObject()
        case UInt8(ascii: "["):
            return try parseArray()
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw failure("unexpected character")
        }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        skipWhitespace()
        var object = JSONObject()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(object)
        }
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw failure("expected a string key")
            }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            // Most objects have a handful of keys: one allocation instead of one per doubling.
            if object.isEmpty { object.entries.reserveCapacity(4) }
            object.updateValue(value, forKey: key)
            skipWhitespace()
            guard index < bytes.count else { throw failure("unterminated object") }
            let separator = bytes[index]
            index += 1
            if separator == UInt8(ascii: "}") { break }
            guard separator == UInt8(ascii: ",") else {
                index -= 1
                throw failure("expected ',' or '}'")
            }
            skipWhitespace()
        }
        depth -= 1
        return .object(object)
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        skipWhitespace()
        var array: [JSONValue] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(array)
        }
        while true {
            array.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw failure("unterminated array") }
            let separator = bytes[index]
            index += 1
            if separator == UInt8(ascii: "]") { break }
            guard separator == UInt8(ascii: ",") else {
                index -= 1
                throw failure("expected ',' or ']'")
            }
            skipWhitespace()
        }
        depth -= 1
        return .array(array)
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= maxDepth else { throw failure("nesting deeper than \(maxDepth) levels") }
        index += 1
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = index
        guard let scan = JSONNumber.scan(bytes, from: start) else { throw failure("invalid number") }
        index = scan.end
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<scan.end])
        if scan.mayOverflow, !JSONNumber.fitsDouble(slice) {
            index = start
            throw failure("number overflows a double")
        }
        return JSONNumber(validatedText: String(decoding: slice, as: UTF8.self))
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let length = literal.utf8CodeUnitCount
        guard bytes.count - index >= length else { throw failure("invalid literal") }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: length)
        for offset in 0..<length where bytes[index + offset] != expected[offset] {
            throw failure("invalid literal")
        }
        index += length
    }

    /// Parses a string starting at its opening quote.
    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes, so the string is a slice of the input.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let string = Self.makeString(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
                index += 1
                return string
            }
            if byte == UInt8(ascii: "\\") {
                return try parseEscapedString(from: start)
            }
            if byte < 0x20 { throw failure("control character in string") }
            if byte < 0x80 {
                index += 1
            } else {
                try skipUTF8Sequence()
            }
        }
        throw failure("unterminated string")
    }

    /// Continues a string at its first backslash, collecting the decoded bytes in `scratch`.
    private mutating func parseEscapedString(from start: Int) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return scratch.withUnsafeBytes { Self.makeString($0) }
            }
            if byte == UInt8(ascii: "\\") {
                try parseEscape()
            } else if byte < 0x20 {
                throw failure("control character in string")
            } else if byte < 0x80 {
                scratch.append(byte)
                index += 1
            } else {
                let sequenceStart = index
                try skipUTF8Sequence()
                scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[sequenceStart..<index]))
            }
        }
        throw failure("unterminated string")
    }

    /// Decodes one escape sequence at a backslash into `scratch`.
    private mutating func parseEscape() throws(JSONParseError) {
        guard index + 1 < bytes.count else { throw failure("unterminated string") }
        let escaped = bytes[index + 1]
        switch escaped {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
            scratch.append(escaped)
        case UInt8(ascii: "b"): scratch.append(0x08)
        case UInt8(ascii: "f"): scratch.append(0x0C)
        case UInt8(ascii: "n"): scratch.append(0x0A)
        case UInt8(ascii: "r"): scratch.append(0x0D)
        case UInt8(ascii: "t"): scratch.append(0x09)
        case UInt8(ascii: "u"):
            try parseUnicodeEscape()
            return
        default:
            throw failure("invalid escape")
        }
        index += 2
    }

    /// Decodes `\uXXXX` (and its low-surrogate partner) at a backslash into `scratch`.
    private mutating func parseUnicodeEscape() throws(JSONParseError) {
        let escapeStart = index
        let unit = try hex4(at: index + 2)
        index += 6
        var scalar: UInt32
        switch unit {
        case 0xD800...0xDBFF:
            guard index + 1 < bytes.count,
                bytes[index] == UInt8(ascii: "\\"),
                bytes[index + 1] == UInt8(ascii: "u")
            else {
                index = escapeStart
                throw failure("lone high surrogate escape")
            }
            let low = try hex4(at: index + 2)
            guard (0xDC00...0xDFFF).contains(low) else {
                index = escapeStart
                throw failure("high surrogate escape not followed by a low surrogate")
            }
            index += 6
            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        case 0xDC00...0xDFFF:
            index = escapeStart
            throw failure("lone low surrogate escape")
        default:
            scalar = unit
        }
        Self.appendUTF8(scalar, to: &scratch)
    }

    private func hex4(at position: Int) throws(JSONParseError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw failure("truncated \\u escape") }
        var value: UInt32 = 0
        for offset in 0..<4 {
            let byte = bytes[position + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence at `index` (Unicode 15, table 3-7) and skips it.
    private mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[index]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: throw failure("invalid UTF-8")
        }
        guard index + length <= bytes.count else { throw failure("invalid UTF-8") }
        let second = bytes[index + 1]
        guard second >= low, second <= high else { throw failure("invalid UTF-8") }
        for offset in 2..<max(length, 2) where bytes[index + offset] & 0xC0 != 0x80 {
            throw failure("invalid UTF-8")
        }
        index += length
    }

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < bytes.count, Self.isWhitespace(bytes[index]) {
            index += 1
        }
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private func failure(_ message: String) -> JSONParseError {
        JSONParseError(message: message, offset: index)
    }

    /// Makes a `String` from bytes already validated as UTF-8.
    private static func makeString(_ utf8: UnsafeRawBufferPointer) -> String {
        utf8.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
    }

    static func appendUTF8(_ scalar: UInt32, to buffer: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            buffer.append(UInt8(scalar))
        case 0x80..<0x800:
            buffer.append(UInt8(0xC0 | scalar >> 6))
            buffer.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            buffer.append(UInt8(0xE0 | scalar >> 12))
            buffer.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            buffer.append(UInt8(0x80 | scalar & 0x3F))
        default:
            buffer.append(UInt8(0xF0 | scalar >> 18))
            buffer.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            buffer.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            buffer.append(UInt8(0x80 | scalar & 0x3F))
        }
    }
}

extension JSONValue {
    /// How deep arrays and objects may nest unless a parse says otherwise; `[]` is depth 1.
    public static let defaultMaxDepth = 64

    /// Parses exactly one JSON value (with optional surrounding whitespace) from UTF-8 bytes.
    ///
    /// - Parameters:
    ///   - bytes: the JSON text.
    ///   - maxDepth: the deepest nesting of arrays and objects accepted; `[]` is depth 1.
    /// - Throws: ``JSONParseError`` for anything that is not strict RFC 8259 JSON, for invalid UTF-8,
    ///   lone surrogate escapes, numbers that overflow a `Double`, and nesting deeper than `maxDepth`.
    public init(parsing bytes: UnsafeRawBufferPointer, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        self = try parser.parseDocument()
    }

    /// Parses exactly one JSON value from UTF-8 bytes; see ``init(parsing:maxDepth:)-(UnsafeRawBufferPointer,_)``.
    public init(parsing bytes: [UInt8], maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { buffer in
            Result { () throws(JSONParseError) -> JSONValue in try JSONValue(parsing: buffer, maxDepth: maxDepth) }
        }
        self = try result.get()
    }

    /// Parses exactly one JSON value from a string; see ``init(parsing:maxDepth:)-(UnsafeRawBufferPointer,_)``.
    public init(parsing string: String, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        var copy = string
        let result: Result<JSONValue, JSONParseError> = copy.withUTF8 { utf8 in
            Result { () throws(JSONParseError) -> JSONValue in
                try JSONValue(parsing: UnsafeRawBufferPointer(utf8), maxDepth: maxDepth)
            }
        }
        self = try result.get()
    }
}
