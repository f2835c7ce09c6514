/// Paces a device's telemetry at a fixed interval without drift; no interval means no waiting.
struct Pacer {
    private let clock = ContinuousClock()
    private var next: ContinuousClock.Instant

    /// Starts after a random fraction of the first interval, so a fleet does not send in lockstep.
    init(interval: Duration?) {
        self.next = ContinuousClock.now
        if let interval {
            self.next = self.next + interval * Double.random(in: 0..<1)
        }
    }

    /// Waits for the next tick; after a stall (e.g. a full window) it skips the missed ticks.
    mutating func wait(interval: Duration?) async throws {
        guard let interval else {
            // Nothing else would suspend while the window has room; let other devices run.
            await Task.yield()
            try Task.checkCancellation()
            return
        }
        try await self.clock.sleep(until: self.next)
        self.next = self.next + interval
        let now = self.clock.now
        if self.next < now {
            self.next = now
        }
    }
}
