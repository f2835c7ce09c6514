/// A device's `desired/set` patches, one at a time: while one is on its way to the broker, the next ones wait.
/// Applied on top of a document the broker may still refuse, the next patch would carry the refused one's changes
/// into a document that is stored, though the refused patch was answered `rejected`.
///
/// At most ``maxWaiting`` patches wait over all devices (each holds its MQTT message); one more is refused.
struct PatchLine<Patch>: Sendable where Patch: Sendable {
    /// Devices with a patch on its way, and what waits behind it, oldest first.
    private var waiting: [String: [Patch]] = [:]
    private var waitingCount = 0
    let maxWaiting: Int

    init(maxWaiting: Int = 1_000) {
        self.maxWaiting = maxWaiting
    }

    enum Arrival: Equatable {
        /// Nothing of the device is on its way: apply it now (it is then the one on its way, until `next`).
        case applyNow
        /// It waits for the patches before it.
        case waits
        /// Too many wait already: refuse it.
        case full
    }

    /// A patch for `device` arrived.
    mutating func arrive(_ patch: Patch, device: String) -> Arrival {
        guard waiting[device] != nil else {
            waiting[device] = []
            return .applyNow
        }
        guard waitingCount < maxWaiting else { return .full }
        waiting[device]!.append(patch)
        waitingCount += 1
        return .waits
    }

    /// The device's patch on its way has its outcome (or was answered without going anywhere): the next one to apply,
    /// now on its way, or nil when none waits (the device's line is then empty).
    mutating func next(device: String) -> Patch? {
        guard var line = waiting[device], !line.isEmpty else {
            waiting[device] = nil
            return nil
        }
        let patch = line.removeFirst()
        waiting[device] = line
        waitingCount -= 1
        return patch
    }

    /// Patches waiting over all devices (the one on its way of each not counted).
    var count: Int { waitingCount }
}
