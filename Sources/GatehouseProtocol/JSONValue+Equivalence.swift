extension JSONValue {
    /// Whether two values are the same JSON: numbers by value (`21` equals `21.0` and `2.1e1`), objects key by
    /// key in any order, arrays element by element. ``==`` compares numbers by their text instead.
    public func isEquivalent(to other: JSONValue) -> Bool {
        switch (self, other) {
        case (.number(let a), .number(let b)):
            return a.hasSameValue(as: b)
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let counterpart = b[key], value.isEquivalent(to: counterpart) else { return false }
            }
            return true
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.isEquivalent(to: $1) }
        default:
            return self == other
        }
    }
}

extension JSONNumber {
    /// Whether both numbers have the same value. Integers that fit 64 bits compare exactly (a `Double` cannot
    /// tell 2^63 from 2^63 + 1); everything else by its nearest `Double`.
    public func hasSameValue(as other: JSONNumber) -> Bool {
        if text == other.text { return true }
        if let a = int64Value, let b = other.int64Value { return a == b }
        if let a = uint64Value, let b = other.uint64Value { return a == b }
        return doubleValue == other.doubleValue
    }
}
