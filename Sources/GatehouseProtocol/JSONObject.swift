/// A JSON object: string keys mapped to ``JSONValue``s, in insertion order.
///
/// Setting an existing key replaces its value in place (so a duplicate key on parse: last wins).
/// Equality ignores order: two objects are equal when they have the same keys with equal values.
public struct JSONObject: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One key/value pair.
    struct Entry: Sendable {
        var key: String
        var value: JSONValue

        init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// Objects up to this size are searched linearly; larger ones keep a hash index.
    static var indexThreshold: Int { 12 }

    var entries: [Entry]
    /// Key to position in ``entries``; only present when `entries.count > indexThreshold`.
    var positions: [String: Int]?

    /// Creates an empty object.
    public init() {
        self.entries = []
        self.positions = nil
    }

    /// Creates an object from key/value pairs; when a key repeats, the last value wins.
    public init(_ pairs: [(String, JSONValue)]) {
        self.init()
        entries.reserveCapacity(pairs.count)
        for (key, value) in pairs {
            updateValue(value, forKey: key)
        }
    }

    /// Creates an object from a dictionary literal; when a key repeats, the last value wins.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// The value for `key`; setting `nil` removes the key.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let position = position(of: key) else { return nil }
            return entries[position].value
        }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    /// The number of keys.
    public var count: Int { entries.count }

    /// Whether the object has no keys.
    public var isEmpty: Bool { entries.isEmpty }

    /// The keys, in insertion order.
    public var keys: [String] { entries.map(\.key) }

    /// The values, in insertion order.
    public var values: [JSONValue] { entries.map(\.value) }

    /// Sets `value` for `key`, keeping the key's position if it already exists.
    public mutating func updateValue(_ value: JSONValue, forKey key: String) {
        if let position = position(of: key) {
            entries[position].value = value
            return
        }
        entries.append(Entry(key: key, value: value))
        if positions != nil {
            positions![key] = entries.count - 1
        } else if entries.count > Self.indexThreshold {
            rebuildPositions()
        }
    }

    /// Removes `key` and returns its value, if it was present.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        guard let position = position(of: key) else { return nil }
        let removed = entries.remove(at: position).value
        if entries.count > Self.indexThreshold {
            rebuildPositions()
        } else {
            positions = nil
        }
        return removed
    }

    /// Removes every key in `keys` in one pass (removing them one by one would be quadratic).
    public mutating func removeValues(forKeys keys: Set<String>) {
        guard !keys.isEmpty else { return }
        entries.removeAll { keys.contains($0.key) }
        if entries.count > Self.indexThreshold {
            rebuildPositions()
        } else {
            positions = nil
        }
    }

    /// Returns the object with `patch` applied as an RFC 7386 JSON Merge Patch.
    public func merging(patch: JSONObject) -> JSONObject {
        guard case .object(let merged) = JSONValue.mergePatch(target: .object(self), patch: .object(patch)) else {
            return self
        }
        return merged
    }

    /// The compact JSON text of the object.
    public var description: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Whether both objects have the same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for entry in lhs.entries {
            guard let other = rhs[entry.key], other == entry.value else { return false }
        }
        return true
    }

    /// Iterates over the key/value pairs in insertion order.
    public struct Iterator: IteratorProtocol {
        var base: IndexingIterator<[Entry]>

        /// The next pair, or `nil` at the end.
        public mutating func next() -> (key: String, value: JSONValue)? {
            guard let entry = base.next() else { return nil }
            return (entry.key, entry.value)
        }
    }

    /// An iterator over the key/value pairs in insertion order.
    public func makeIterator() -> Iterator {
        Iterator(base: entries.makeIterator())
    }

    func position(of key: String) -> Int? {
        if let positions { return positions[key] }
        for index in entries.indices where entries[index].key == key {
            return index
        }
        return nil
    }

    mutating func rebuildPositions() {
        var map = [String: Int](minimumCapacity: entries.count)
        for (index, entry) in entries.enumerated() {
            map[entry.key] = index
        }
        positions = map
    }
}
