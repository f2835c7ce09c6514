import Foundation
import GatehouseProtocol
import Testing

@testable import Gatehouse

@Suite struct ObservabilityTests {
    @Test func rateAveragesBetweenReadingsAtLeastAWindowApart() {
        var rate = RateEstimate(nowMs: 0)
        #expect(rate.update(count: 10, nowMs: 500) == 0)  // within the window: the last figure (none yet)
        #expect(rate.update(count: 20, nowMs: 2000) == 10)  // 20 messages in 2 s
        #expect(rate.update(count: 25, nowMs: 2500) == 10)  // too soon: repeated
        #expect(rate.update(count: 25, nowMs: 4000) == 2.5)  // 5 more since 2 s, over 2 s
        #expect(rate.update(count: 25, nowMs: 9000) == 0)
    }

    @Test(arguments: [
        ("gh/dev-1/telemetry", "telemetry"), ("gh/dev-1/event/door", "event"), ("gh/dev-1/media/snapshot", "media"),
        ("gh/dev-1/pending/c-1", "pending"), ("gh/dev-1/availability", "availability"), ("gh/bridge/gw-1/health", "bridge"),
        ("homeassistant/sensor/x/config", "other"), ("ghx/dev-1/telemetry", "other"), ("gh/dev-1", "other"),
        ("gh/dev-1/unheard-of", "other"),
    ])
    func publishedTopicTypes(topic: String, type: String) {
        #expect(GatewayMetrics.outTypes[GatewayMetrics.outTypeIndex(topic: topic, base: "gh")] == type)
    }

    /// Device messages are counted under their `type` as the wire spells it.
    @Test func receivedTypesAreLabelledAsOnTheWire() throws {
        let bodies: [DeviceMessageBody] = [
            .hello(DeviceHello(kind: nil, model: nil, firmware: nil, capabilities: nil)),
            .telemetry(data: [:], ts: nil, qos: nil), .state(data: [:]), .event(name: "e", data: .null, ts: nil),
            .response(id: try #require(CommandID(json: "c-1")), status: .ok, data: .null, error: nil),
        ]
        for body in bodies { #expect(GatewayMetrics.InType(body).name == body.type) }
        #expect(GatewayMetrics.InType.media.name == "media" && GatewayMetrics.InType.invalid.name == "invalid")
    }

    /// Threads that add at once, more of them than there are stripes (so some share one), lose nothing.
    @Test func stripedCountsSumWhatEveryThreadAdded() async {
        let counts = StripedCounts(count: 3)
        let threads = 12
        let adds = 20_000
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let group = DispatchGroup()
            for _ in 0..<threads {
                group.enter()
                Thread {
                    for _ in 0..<adds { counts.add(2, at: 1) }
                    counts.add(1, at: 2)
                    group.leave()
                }.start()
            }
            group.notify(queue: .global()) { done.resume() }
        }
        #expect(counts.sum(at: 0) == 0)
        #expect(counts.sum(at: 1) == threads * adds * 2)
        #expect(counts.sum(at: 2) == threads)
    }
}
