import Mosquitto
import Testing

@Suite struct MQTTReconnectPolicyTests {
    @Test func stepsGrowWithTheSquareUpToTheMaximum() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(30), exponential: true, jitter: 0)
        #expect((0..<7).map { policy.step(attempt: $0) } == [1, 4, 9, 16, 25, 30, 30].map { Duration.seconds($0) })
        #expect(policy.delay(attempt: 2) == .seconds(9))
        #expect(policy.step(attempt: .max) == .seconds(30))
        let linear = MQTTReconnectPolicy(minimumDelay: .milliseconds(200), maximumDelay: .seconds(1), exponential: false, jitter: 0)
        #expect((0..<7).map { linear.step(attempt: $0) } == [200, 400, 600, 800, 1000, 1000, 1000].map { Duration.milliseconds($0) })
    }

    @Test func jitterStaysWithinItsShareOfTheStepAndAboveTheMinimum() {
        let policy = MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .seconds(5), jitter: 0.5)
        var seen: Set<Duration> = []
        for attempt in 0..<12 {
            let step = policy.step(attempt: attempt)
            for _ in 0..<50 {
                let delay = policy.delay(attempt: attempt)
                seen.insert(delay)
                #expect(delay <= step)
                #expect(delay >= max(.milliseconds(100), step * 0.5))
            }
        }
        #expect(seen.count > 12, "jitter should vary the delays")
    }

    @Test func invalidValuesAreClamped() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(5), maximumDelay: .seconds(1), jitter: 7)
        #expect(policy.maximumDelay == .seconds(5))
        #expect(policy.jitter == 1)
        #expect(policy.delay(attempt: 3) == .seconds(5))
        #expect(MQTTReconnectPolicy(jitter: -.infinity).jitter == 0)
    }

    @Test func defaults() {
        let policy = MQTTClientOptions(clientID: "gw").reconnect
        #expect(policy == MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(30), exponential: true, jitter: 0.5))
    }
}
