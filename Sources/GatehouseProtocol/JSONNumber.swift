/// A JSON number, kept as its exact source text.
///
/// Keeping the text means that values such as `18446744073709551615`, `1.50` or `-0`
/// travel through the gateway bit-exactly: a device's `seq`, `ts` or command id is
/// echoed back in the very form it was written. Equality and hashing are by text, so
/// `1.5` and `1.50` are different numbers here; compare ``doubleValue`` for numeric equality.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number exactly as written; always valid RFC 8259 number grammar.
    public let text: String

    /// Creates a number from text that has already been validated.
    init(validatedText: String) {
        self.text = validatedText
    }

    /// Creates a number from its JSON text.
    ///
    /// Returns `nil` when `text` is not RFC 8259 number grammar (`+1`, `.5`, `1.`, `01`, `NaN`, ...)
    /// or when its value overflows a `Double` (`1e999`).
    public init?(text: String) {
        var copy = text
        let valid = copy.withUTF8 { utf8 in
            JSONNumber.isValid(UnsafeRawBufferPointer(utf8))
        }
        guard valid else { return nil }
        self.text = text
    }

    /// Creates a number from an integer.
    public init(_ value: Int) {
        self.text = String(value)
    }

    /// Creates a number from a 64-bit integer.
    public init(_ value: Int64) {
        self.text = String(value)
    }

    /// Creates a number from an unsigned 64-bit integer.
    public init(_ value: UInt64) {
        self.text = String(value)
    }

    /// Creates a number from a `Double`; `nil` for NaN and infinities, which have no JSON form.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        // Swift's shortest round-trip description is valid JSON for every finite value
        // ("1.5", "1e-05", "1e+16", "-0.0").
        self.text = value.description
    }

    /// The value as a `Double` (rounded to the nearest representable value).
    public var doubleValue: Double {
        Double(text) ?? .nan
    }

    /// Whether the number is written without fraction and exponent (`42`, `-7`; not `1.0` or `1e2`).
    public var isInteger: Bool {
        for byte in text.utf8 where byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            return false
        }
        return true
    }

    /// The value as `Int64`, only when ``isInteger`` and it fits.
    public var int64Value: Int64? {
        isInteger ? Int64(text) : nil
    }

    /// The value as `UInt64`, only when ``isInteger`` and it is within `0...2^64-1`.
    public var uint64Value: UInt64? {
        isInteger ? UInt64(text) : nil
    }

    /// Whether the number is written as a plain run of decimal digits: no sign, fraction or exponent.
    public var isUnsignedDigits: Bool {
        for byte in text.utf8 where byte < UInt8(ascii: "0") || byte > UInt8(ascii: "9") {
            return false
        }
        return true
    }

    /// The number's text.
    public var description: String { text }

    /// Whether `bytes` is exactly one JSON number that does not overflow a `Double`.
    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let scan = scan(bytes, from: 0), scan.end == bytes.count else { return false }
        return !scan.mayOverflow || Self.fitsDouble(bytes)
    }

    /// The result of scanning number grammar.
    struct Scan {
        /// Index one past the last byte of the number.
        var end: Int
        /// Whether the value could exceed `Double.greatestFiniteMagnitude` (exponent, or 309+ integer digits).
        var mayOverflow: Bool
    }

    /// Scans RFC 8259 number grammar starting at `start`; `nil` when the grammar is violated.
    ///
    /// `number = [ "-" ] int [ frac ] [ exp ]`, `int = "0" / digit1-9 *DIGIT`,
    /// `frac = "." 1*DIGIT`, `exp = ("e" / "E") [ "-" / "+" ] 1*DIGIT`.
    @inline(__always)
    static func scan(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Scan? {
        let count = bytes.count
        var index = start
        if index < count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < count else { return nil }
        let intStart = index
        let first = bytes[index]
        if first == UInt8(ascii: "0") {
            index += 1
        } else if first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9") {
            index += 1
            while index < count, isDigit(bytes[index]) { index += 1 }
        } else {
            return nil
        }
        let intDigits = index - intStart
        if index < count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < count, isDigit(bytes[index]) else { return nil }
            while index < count, isDigit(bytes[index]) { index += 1 }
        }
        var hasExponent = false
        if index < count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            hasExponent = true
            index += 1
            if index < count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < count, isDigit(bytes[index]) else { return nil }
            while index < count, isDigit(bytes[index]) { index += 1 }
        }
        // Without an exponent, 308 integer digits stay below 1e308 < Double.greatestFiniteMagnitude.
        return Scan(end: index, mayOverflow: hasExponent || intDigits > 308)
    }

    /// Whether grammar-valid number text converts to a finite `Double`.
    static func fitsDouble(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return Double(text)?.isFinite ?? false
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }
}
