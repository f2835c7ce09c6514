import Synchronization

/// What ``DeviceClient/sleep(for:)`` needs: the current connection (to close it) and when to wake.
struct SleepControl: Sendable {
    /// The connection attempt running now, if any.
    var connection: ConnectionProgress?
    /// While set and in the future, the client stays disconnected.
    var wakeAt: ContinuousClock.Instant?
}

extension DeviceClient {
    /// Sleeps like a battery device: closes the connection (1000, the gateway publishes `offline` with reason
    /// `disconnected`) and connects again after `duration`. Messages sent meanwhile wait for the next
    /// connection; the gateway sends the desired state that changed meanwhile right after `welcome`.
    public func sleep(for duration: Duration) {
        let connection = self.sleepControl.withLock { control -> ConnectionProgress? in
            control.wakeAt = .now + duration
            return control.connection
        }
        connection?.requestClose()
    }

    /// Records the connection attempt that `sleep(for:)` closes.
    func noteConnection(_ progress: ConnectionProgress?) {
        self.sleepControl.withLock { $0.connection = progress }
    }

    /// When a `sleep(for:)` asks to stay disconnected, takes that instant (so it is slept once).
    func takeWakeTime() -> ContinuousClock.Instant? {
        self.sleepControl.withLock { control in
            defer { control.wakeAt = nil }
            guard let wakeAt = control.wakeAt, wakeAt > .now else { return nil }
            return wakeAt
        }
    }
}
