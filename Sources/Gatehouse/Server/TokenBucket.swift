/// A token bucket: refills at `rate` tokens per second up to `burst`; a take succeeds while tokens last.
/// Not thread-safe: one per connection (used on its event loop), or behind a lock.
struct TokenBucket: Sendable {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var lastNanos: UInt64

    /// A full bucket; `rate` 0 means unlimited.
    init(rate: Double, burst: Double, nowNanos: UInt64) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.lastNanos = nowNanos
    }

    /// A limit of `perSecond` with a burst of two seconds' worth (0 = unlimited), as the `limits.*` rates are.
    init(perSecond: Int, nowNanos: UInt64) {
        self.init(rate: Double(perSecond), burst: 2 * Double(perSecond), nowNanos: nowNanos)
    }

    /// Whether the bucket has refilled to its burst by `nowNanos` (an unlimited one always has): forgetting
    /// it then changes nothing, since a new bucket starts full.
    func isFull(nowNanos: UInt64) -> Bool {
        guard rate > 0 else { return true }
        let refill = nowNanos > lastNanos ? Double(nowNanos - lastNanos) / 1e9 * rate : 0
        return tokens + refill >= burst
    }

    /// Takes `amount` tokens if the bucket holds them; returns whether it did. An amount larger than the
    /// burst passes when the bucket is full and leaves it in debt, so no single message is refused forever.
    mutating func take(_ amount: Double = 1, nowNanos: UInt64) -> Bool {
        guard rate > 0 else { return true }
        if nowNanos > lastNanos {
            tokens = min(burst, tokens + Double(nowNanos - lastNanos) / 1e9 * rate)
            lastNanos = nowNanos
        }
        guard tokens >= min(amount, burst) else { return false }
        tokens -= amount
        return true
    }
}
