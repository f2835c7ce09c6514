/// A device's `desired/set` patches, one at a time: while one is on its way to the broker, the next ones wait.
/// Applied on top of a document the broker may still refuse, the next patch would carry the refused one's changes
/// into a document that is stored, though the refused patch was answered `rejected`.
///
/// What waits is bounded, each patch counted by what it holds (payload, Response Topic, Correlation Data):
/// ``Limits/perDevice`` patches of one device, and ``Limits/patches`` and ``Limits/bytes`` over all devices. One more
/// is refused.
struct PatchLine<Patch>: Sendable where Patch: Sendable {
    struct Limits: Sendable {
        var perDevice = 100
        var patches = 1_000
        var bytes = 16 << 20
    }

    let limits: Limits
    /// Devices with a patch on its way, and what waits behind it (with its size), oldest first.
    private var waiting: [String: [(patch: Patch, bytes: Int)]] = [:]
    private(set) var count = 0
    private(set) var bytes = 0
    /// Set by `drain`: the gateway is shutting down, and no patch is applied any more.
    private(set) var isClosed = false

    init(limits: Limits = Limits()) {
        self.limits = limits
    }

    enum Arrival: Equatable {
        /// Nothing of the device is on its way: apply it now (it is then the one on its way, until `next`).
        case applyNow
        /// It waits for the patches before it.
        case waits
        /// Too many wait already: refuse it.
        case full
        /// The line is closed (`drain`): refuse it.
        case closed
    }

    /// A patch for `device`, `bytes` long, arrived.
    mutating func arrive(_ patch: Patch, bytes size: Int, device: String) -> Arrival {
        guard !isClosed else { return .closed }
        guard let line = waiting[device] else {
            waiting[device] = []
            return .applyNow
        }
        guard line.count < limits.perDevice, count < limits.patches, bytes + size <= limits.bytes else { return .full }
        waiting[device]!.append((patch, size))
        count += 1
        bytes += size
        return .waits
    }

    /// Closes the line and takes every waiting patch out, oldest first per device (the gateway is shutting down: they
    /// are answered, not applied). From now on a patch that arrives is `closed`, and `next` hands out none.
    mutating func drain() -> [(device: String, patch: Patch)] {
        isClosed = true
        var drained: [(device: String, patch: Patch)] = []
        for (device, line) in waiting where !line.isEmpty {
            drained += line.map { (device, $0.patch) }
            waiting[device] = []
        }
        count = 0
        bytes = 0
        return drained
    }

    /// The device's patch on its way has its outcome (or was answered without going anywhere): the next one to apply,
    /// now on its way, or nil when none waits (the device's line is then empty).
    mutating func next(device: String) -> Patch? {
        guard !isClosed, var line = waiting[device], !line.isEmpty else {
            waiting[device] = nil
            return nil
        }
        let first = line.removeFirst()
        waiting[device] = line
        count -= 1
        bytes -= first.bytes
        return first.patch
    }
}
