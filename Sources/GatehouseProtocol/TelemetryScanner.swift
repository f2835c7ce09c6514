import Glibc

/// The fast path of ``DeviceMessage/parse(_:)-(UnsafeRawBufferPointer)`` for the message devices send most: a
/// `telemetry` message whose `data` is compact JSON in plain ASCII, read without building a tree of it (its bytes
/// become the ``TelemetryData``).
///
/// It answers only when sure, and says nil for everything else: another `type`, a malformed message, whitespace
/// inside `data`, a string with an escape or a byte outside printable ASCII, a repeated key (top level: a known one),
/// a number the scan cannot vouch for, an object of more than ``maxKeys`` keys. The general parser then decides, and
/// for every message this one reads, reads the same (a differential test holds them to it).
struct TelemetryScanner {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    /// Keys per object whose repeats the scan finds (on the stack); a larger object goes the general way.
    static let maxKeys = 16

    /// The message, or nil when the general parser must decide.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> DeviceMessage? {
        var scanner = TelemetryScanner(bytes: bytes)
        return scanner.message()
    }

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The top-level members the message is made of; any other is validated and ignored.
    private enum Member: UInt8 {
        case type = 1, seq = 2, ts = 4, qos = 8, data = 16, other = 0
    }

    private mutating func message() -> DeviceMessage? {
        skipWhitespace()
        guard take(UInt8(ascii: "{")) else { return nil }
        var seen: UInt8 = 0
        var seq: UInt64?
        var ts: JSONNumber?
        var qos: Int?
        var data: Range<Int>?
        repeat {
            skipWhitespace()
            guard let key = string() else { return nil }
            skipWhitespace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipWhitespace()
            let member = self.member(named: key)
            // A repeated known member: the last one wins, which the general parser tells.
            guard seen & member.rawValue == 0 else { return nil }
            seen |= member.rawValue
            switch member {
            case .type:
                guard take(#""telemetry""#) else { return nil }
            case .seq:
                guard let text = numberText(), let value = unsignedValue(of: text) else { return nil }
                seq = value
            case .ts:
                if take("null") { break }
                guard let number = number(), number.isInteger else { return nil }
                ts = number
            case .qos:
                if take("null") { break }
                guard let number = number(), number.text == "0" || number.text == "1" else { return nil }
                qos = number.text == "0" ? 0 : 1
            case .data:
                let start = index
                guard index < bytes.count, bytes[index] == UInt8(ascii: "{"), value(depth: 1) else { return nil }
                data = start..<index
            case .other:
                guard value(depth: 1) else { return nil }
            }
            skipWhitespace()
        } while take(UInt8(ascii: ","))
        guard take(UInt8(ascii: "}")) else { return nil }
        skipWhitespace()
        guard index == bytes.count, seen & Member.type.rawValue != 0, let data else { return nil }
        let compact = TelemetryData(compactJSON: Array(UnsafeRawBufferPointer(rebasing: bytes[data])))
        return DeviceMessage(seq: seq, body: .telemetry(data: compact, ts: ts, qos: qos))
    }

    private func member(named key: Range<Int>) -> Member {
        switch key.count {
        case 4: equals(key, "type") ? .type : equals(key, "data") ? .data : .other
        case 3: equals(key, "seq") ? .seq : equals(key, "qos") ? .qos : .other
        case 2: equals(key, "ts") ? .ts : .other
        default: .other
        }
    }

    // MARK: Compact JSON

    /// Validates one compact value; `depth` is that of the container it is in (the message itself is 1).
    private mutating func value(depth: Int) -> Bool {
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "{"): return object(depth: depth + 1)
        case UInt8(ascii: "["): return array(depth: depth + 1)
        case UInt8(ascii: "\""): return string() != nil
        case UInt8(ascii: "t"): return take("true")
        case UInt8(ascii: "f"): return take("false")
        case UInt8(ascii: "n"): return take("null")
        default: return numberText() != nil
        }
    }

    private mutating func object(depth: Int) -> Bool {
        guard depth <= JSONValue.defaultMaxDepth else { return false }
        index += 1
        if take(UInt8(ascii: "}")) { return true }
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: Self.maxKeys) { keys in
            var count = 0
            repeat {
                guard count < keys.count, let key = string(), take(UInt8(ascii: ":")) else { return false }
                for earlier in keys[..<count] where equals(earlier, key) { return false }
                keys[count] = key
                count += 1
                guard value(depth: depth) else { return false }
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}"))
        }
    }

    private mutating func array(depth: Int) -> Bool {
        guard depth <= JSONValue.defaultMaxDepth else { return false }
        index += 1
        if take(UInt8(ascii: "]")) { return true }
        repeat {
            guard value(depth: depth) else { return false }
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]"))
    }

    /// A string of printable ASCII without escapes: the range of its content.
    private mutating func string() -> Range<Int>? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return start..<index - 1
            }
            guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
            index += 1
        }
        return nil
    }

    /// A number, through the general parser's own scan and overflow check: the range of its text. (Inside `data` that
    /// is all a number needs, no `JSONNumber` of it.)
    private mutating func numberText() -> Range<Int>? {
        guard let scan = JSONNumber.scan(bytes, from: index) else { return nil }
        let range = index..<scan.end
        if scan.mayOverflow, !JSONNumber.fitsDouble(UnsafeRawBufferPointer(rebasing: bytes[range])) { return nil }
        index = scan.end
        return range
    }

    /// The value of a number that is digits alone and fits a `UInt64` (a `seq`), read from its bytes: no `String` of it.
    private func unsignedValue(of text: Range<Int>) -> UInt64? {
        var value: UInt64 = 0
        for index in text {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (tenfold, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (sum, carried) = tenfold.addingReportingOverflow(UInt64(digit))
            guard !overflowed, !carried else { return nil }
            value = sum
        }
        return value
    }

    /// A number of the message's own fields (`ts`, `qos`).
    private mutating func number() -> JSONNumber? {
        numberText().map { JSONNumber(validatedText: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[$0]), as: UTF8.self)) }
    }

    // MARK: Bytes

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func take(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard bytes.count - index >= count, memcmp(bytes.baseAddress! + index, text.utf8Start, count) == 0 else { return false }
        index += count
        return true
    }

    private func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
        range.count == text.utf8CodeUnitCount && memcmp(bytes.baseAddress! + range.lowerBound, text.utf8Start, range.count) == 0
    }

    private func equals(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
        a.count == b.count && memcmp(bytes.baseAddress! + a.lowerBound, bytes.baseAddress! + b.lowerBound, a.count) == 0
    }
}
