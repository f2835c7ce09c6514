/// The budgets for new device connections: each device id's own (`limits.max_connects_per_device_per_min`,
/// a burst of ten seconds' worth) first, then the gateway's (`limits.max_connects_per_s`). A connection over
/// its device's budget is refused without touching the gateway's, so one device reconnecting in a loop cannot
/// use up the budget of all the others. Only authenticated connections get here: unauthenticated clients take
/// from no budget. Not thread-safe: `DeviceAdmission` keeps it behind a lock.
struct ConnectBudget: Sendable {
    enum Decision: Equatable, Sendable {
        case allowed
        /// The device connected too often; it may try again after `retryAfter` seconds.
        case deviceOverBudget(retryAfter: Int)
        /// The gateway as a whole takes no more new connections this second.
        case gatewayOverBudget
    }

    private var gateway: TokenBucket
    /// Only devices whose bucket is not full again: a full bucket is the same as none (see `prune`).
    private var devices: [String: TokenBucket] = [:]
    private var pruneAt = 1024

    init(nowNanos: UInt64) {
        gateway = TokenBucket(perSecond: 0, nowNanos: nowNanos)
    }

    /// Devices with a bucket of their own now (for tests: stays bounded).
    var trackedDevices: Int { devices.count }

    /// One new connection of `device`; a rate changed by a reload starts new buckets.
    mutating func take(device: String, perDevicePerMinute: Int, gatewayPerSecond: Int, nowNanos: UInt64) -> Decision {
        if gateway.rate != Double(gatewayPerSecond) { gateway = TokenBucket(perSecond: gatewayPerSecond, nowNanos: nowNanos) }
        var own = Self.bucket(devices[device], perMinute: perDevicePerMinute, nowNanos: nowNanos)
        guard own.take(nowNanos: nowNanos) else {
            devices[device] = own
            return .deviceOverBudget(retryAfter: Int((60.0 / Double(perDevicePerMinute)).rounded(.up)))
        }
        guard gateway.take(nowNanos: nowNanos) else { return .gatewayOverBudget }
        if perDevicePerMinute > 0 {
            devices[device] = own
            prune(nowNanos: nowNanos)
        }
        return .allowed
    }

    private static func bucket(_ existing: TokenBucket?, perMinute: Int, nowNanos: UInt64) -> TokenBucket {
        let rate = Double(perMinute) / 60
        if let existing, existing.rate == rate { return existing }
        return TokenBucket(rate: rate, burst: max(1, (rate * 10).rounded(.down)), nowNanos: nowNanos)
    }

    /// Forgets the buckets that are full again, whenever the map has doubled since the last pruning: the map
    /// holds at most the devices that connected within about ten seconds, twice over.
    private mutating func prune(nowNanos: UInt64) {
        guard devices.count >= pruneAt else { return }
        devices = devices.filter { !$0.value.isFull(nowNanos: nowNanos) }
        pruneAt = max(1024, devices.count * 2)
    }
}
