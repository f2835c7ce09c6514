/// The sizes of the large QoS 0 publishes libmosquitto holds unwritten, by message id, so that the callback that
/// reports a write (with the id alone) can take their bytes off. Under ``ClientCore``'s lock.
///
/// libmosquitto's queue has no limit of its own, and a count of publishes alone lets 4,096 camera frames of 4 MiB
/// wait in memory. Small publishes (under ``ClientCore/largeAtMostOnceBytes``) are not looked up: their count bounds
/// them, and the telemetry path pays nothing for this.
///
/// The write can be reported before its sender registered the id, as a PUBACK can: while a large send is in
/// progress, a write of an id not registered is parked, and the sender finds it there. Parked ids are dropped when
/// no large send is in progress (nobody can claim them then).
///
/// libmosquitto's 16-bit ids come round: an id can be given again while its earlier publish is still unwritten (65,535
/// publishes later, with a large window). Its sizes are kept oldest first, the order libmosquitto writes them in.
struct UnwrittenSizes {
    private var sizes: [Int32: Int] = [:]
    /// The sizes of later publishes given an id still in `sizes`, oldest first. Rare: looked up only when not empty.
    private var reused: [Int32: [Int]] = [:]
    private var writtenEarly: Set<Int32> = []
    private var sending = 0

    /// Nothing registered, nothing being sent.
    var isEmpty: Bool { sizes.isEmpty && sending == 0 }

    /// A large publish is about to go to libmosquitto.
    mutating func beginSend() {
        sending += 1
    }

    /// The send that `beginSend` began ended: libmosquitto took it as `mid` (nil: it did not). Returns the bytes that
    /// are now unwritten: `bytes`, or 0 when its write was reported already or it was not taken.
    mutating func endSend(mid: Int32?, bytes: Int) -> Int {
        sending -= 1
        defer { if sending == 0, !writtenEarly.isEmpty { writtenEarly.removeAll() } }
        guard let mid, writtenEarly.remove(mid) == nil else { return 0 }
        if let earlier = sizes.updateValue(bytes, forKey: mid) {
            sizes[mid] = earlier
            reused[mid, default: []].append(bytes)
        }
        return bytes
    }

    /// libmosquitto wrote the QoS 0 publish `mid`: returns the bytes no longer unwritten (0 for a small one).
    mutating func written(_ mid: Int32) -> Int {
        if let bytes = sizes.removeValue(forKey: mid) {
            if !reused.isEmpty, var later = reused.removeValue(forKey: mid) {
                sizes[mid] = later.removeFirst()
                if !later.isEmpty { reused[mid] = later }
            }
            return bytes
        }
        if sending > 0 { writtenEarly.insert(mid) }
        return 0
    }

    /// A fresh session: libmosquitto dropped whatever it held (no send is in progress then).
    mutating func removeAll() {
        sizes.removeAll()
        reused.removeAll()
        writtenEarly.removeAll()
    }
}
