import GatehouseDevice
import Testing

@Suite struct ReconnectBackoffTests {
    @Test func delaysStayWithinMinimumAndTheDoublingCeiling() {
        let backoff = ReconnectBackoff(minimum: .milliseconds(500), maximum: .seconds(30))
        for attempt in 0..<70 {
            let ceiling = min(Duration.seconds(30), .milliseconds(500) * Double(1 << min(attempt, 20)))
            for _ in 0..<20 {
                let delay = backoff.delay(attempt: attempt)
                #expect(delay >= .milliseconds(500), "attempt \(attempt)")
                #expect(delay <= ceiling, "attempt \(attempt)")
            }
        }
        #expect(backoff.delay(attempt: 0) == .milliseconds(500), "the first retry has no room for jitter")
    }

    @Test func jitterSpreadsTheDelays() {
        let backoff = ReconnectBackoff(minimum: .milliseconds(100), maximum: .seconds(10))
        let delays = Set((0..<100).map { _ in backoff.delay(attempt: 6) })
        #expect(delays.count > 20)
        #expect(delays.contains { $0 > .seconds(3) })
        #expect(delays.contains { $0 < .seconds(3) })
    }

    @Test func invalidBoundsAreRaised() {
        let backoff = ReconnectBackoff(minimum: .seconds(-1), maximum: .seconds(-5))
        #expect(backoff.minimum == .zero)
        #expect(backoff.maximum == .zero)
        #expect(backoff.delay(attempt: 10) == .zero)
        let inverted = ReconnectBackoff(minimum: .seconds(2), maximum: .seconds(1))
        #expect(inverted.maximum == .seconds(2))
        #expect(inverted.delay(attempt: 5) == .seconds(2))
    }
}
