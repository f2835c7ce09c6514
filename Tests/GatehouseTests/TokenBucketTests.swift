import Testing

@testable import Gatehouse

@Suite struct TokenBucketTests {
    /// How many of `count` takes of `amount` at `nanos` succeed.
    func takes(_ bucket: inout TokenBucket, _ count: Int, amount: Double = 1, at nanos: UInt64) -> Int {
        var taken = 0
        for _ in 0..<count where bucket.take(amount, nowNanos: nanos) { taken += 1 }
        return taken
    }

    @Test func burstThenRefill() {
        var bucket = TokenBucket(rate: 10, burst: 20, nowNanos: 0)
        #expect(takes(&bucket, 25, at: 0) == 20)
        #expect(takes(&bucket, 1, at: 50_000_000) == 0)  // 0.05 s: half a token
        #expect(takes(&bucket, 1, at: 100_000_000) == 1)  // 0.1 s: one token
    }

    @Test func zeroRateIsUnlimited() {
        var bucket = TokenBucket(rate: 0, burst: 0, nowNanos: 0)
        #expect(takes(&bucket, 1000, at: 0) == 1000)
    }

    @Test func anAmountOverTheBurstPassesWhenFullAndLeavesDebt() {
        var bucket = TokenBucket(rate: 100, burst: 200, nowNanos: 0)
        #expect(takes(&bucket, 1, amount: 500, at: 0) == 1)
        #expect(takes(&bucket, 1, at: 2_000_000_000) == 0)  // 2 s repay 200 of the 300 owed
        #expect(takes(&bucket, 1, at: 3_010_000_000) == 1)
    }
}
