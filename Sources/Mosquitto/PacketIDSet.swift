/// A set of MQTT packet identifiers (16-bit, as libmosquitto gives them) kept as a bitmap: inserting and removing
/// hash nothing. `ClientCore` marks every QoS 0 publish in one, on the publish path and again on the network thread;
/// as a `Set<Int32>` that was about 4 % of the gateway's CPU on the QoS 0 flow.
struct PacketIDSet {
    /// One bit per identifier 0...65535 (8 KiB, allocated on the first insert).
    private var words: [UInt64] = []
    private(set) var count = 0

    /// Inserts `id`; identifiers outside 0...65535 are not kept (libmosquitto makes none).
    mutating func insert(_ id: Int32) {
        guard let (word, bit) = Self.position(id) else { return }
        if words.isEmpty { words = Array(repeating: 0, count: 1024) }
        guard words[word] & bit == 0 else { return }
        words[word] |= bit
        count += 1
    }

    /// Removes `id`; returns whether it was there.
    mutating func remove(_ id: Int32) -> Bool {
        guard let (word, bit) = Self.position(id), count > 0, words[word] & bit != 0 else { return false }
        words[word] &= ~bit
        count -= 1
        return true
    }

    func contains(_ id: Int32) -> Bool {
        guard let (word, bit) = Self.position(id), count > 0 else { return false }
        return words[word] & bit != 0
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        for index in words.indices { words[index] = 0 }
        count = 0
    }

    private static func position(_ id: Int32) -> (word: Int, bit: UInt64)? {
        guard (0...65535).contains(id) else { return nil }
        return (Int(id) >> 6, 1 << UInt64(id & 63))
    }
}
