/// Events per second from a running total: each reading at least `windowMs` after the previous one
/// averages over the time between them; readings closer together repeat the last figure.
struct RateEstimate: Sendable {
    private var markMs: Int64
    private var markCount: Int
    private(set) var perSecond = 0.0

    init(nowMs: Int64, count: Int = 0) {
        markMs = nowMs
        markCount = count
    }

    mutating func update(count: Int, nowMs: Int64, windowMs: Int64 = 1000) -> Double {
        let elapsed = nowMs - markMs
        if elapsed >= windowMs {
            perSecond = Double(count - markCount) * 1000 / Double(elapsed)
            markMs = nowMs
            markCount = count
        }
        return perSecond
    }
}
