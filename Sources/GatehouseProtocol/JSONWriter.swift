/// Low-level helpers for writing JSON text into a byte buffer without building a ``JSONValue``.
@usableFromInline
enum JSONWriter {
    /// Appends `string` as a quoted, escaped JSON string.
    static func appendString(_ string: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        let done: Void? = string.utf8.withContiguousStorageIfAvailable { utf8 in
            appendEscaped(utf8, to: &buffer)
        }
        if done == nil {
            var copy = string
            copy.withUTF8 { appendEscaped($0, to: &buffer) }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// Appends a `"key":` member prefix.
    static func appendKey(_ key: String, to buffer: inout [UInt8]) {
        appendString(key, to: &buffer)
        buffer.append(UInt8(ascii: ":"))
    }

    /// Writes `value`'s decimal digits (what `String(value)` makes) into `out` from `start`, where there is room for 20;
    /// returns the index after the last. From the last digit back, two at a time: one 64-bit division per two digits
    /// (every telemetry payload has its time of receipt's 13 and its `seq`'s, every ack its `seq`'s).
    @inlinable
    static func writeDecimal(_ value: UInt64, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        var length = 1
        var bound: UInt64 = 10
        while length < 20, value >= bound {
            length += 1
            bound &*= 10
        }
        let end = start + length
        precondition(start >= 0 && end <= out.count, "no room for the digits")
        let digits = out.baseAddress!  // within bounds, checked once
        let zero = UInt8(ascii: "0")
        var (rest, at) = (value, end)
        while rest >= 10 {
            let pair = UInt8(truncatingIfNeeded: rest % 100)
            rest /= 100
            at -= 2
            digits[at] = zero + pair / 10
            digits[at + 1] = zero + pair % 10
        }
        if at > start { digits[at - 1] = zero + UInt8(truncatingIfNeeded: rest) }
        return end
    }

    /// Appends `value`'s decimal digits, without making a `String` of them (this runs for every telemetry `seq`).
    static func appendDecimal(_ value: UInt64, to buffer: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            let end = writeDecimal(value, into: digits, at: 0)
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: digits[..<end]))
        }
    }

    /// Appends ASCII text verbatim (punctuation, keys known not to need escaping, numbers).
    static func appendRaw(_ text: String, to buffer: inout [UInt8]) {
        var text = text  // `withUTF8` lends a native string's bytes; appending its `utf8` view went element by element
        text.withUTF8 { buffer.append(contentsOf: $0) }
    }

    private static func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        var runStart = 0
        for index in 0..<utf8.count {
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            if runStart < index {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            }
            runStart = index + 1
            buffer.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): buffer.append(byte)
            case 0x08: buffer.append(UInt8(ascii: "b"))
            case 0x0C: buffer.append(UInt8(ascii: "f"))
            case 0x0A: buffer.append(UInt8(ascii: "n"))
            case 0x0D: buffer.append(UInt8(ascii: "r"))
            case 0x09: buffer.append(UInt8(ascii: "t"))
            default:
                buffer.append(contentsOf: "u00".utf8)
                buffer.append(hexDigit(byte >> 4))
                buffer.append(hexDigit(byte & 0x0F))
            }
        }
        if runStart < utf8.count {
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}
