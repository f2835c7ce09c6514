import Testing

@testable import Gatehouse

/// Fair connect budgets: each device's own first, then the gateway's.
@Suite struct ConnectBudgetTests {
    let ms: UInt64 = 1_000_000

    @Test func aDeviceInALoopUsesUpOnlyItsOwnBudget() {
        var budget = ConnectBudget(nowNanos: 0)
        var looped: [ConnectBudget.Decision] = []
        for i in 0..<1000 {
            looped.append(budget.take(device: "loop", perDevicePerMinute: 30, gatewayPerSecond: 10, nowNanos: UInt64(i) * ms))
        }
        // A burst of ten seconds' worth (5), then 1 per 2 s: one more within the second.
        #expect(looped.filter { $0 == .allowed }.count == 5)
        #expect(looped.last == .deviceOverBudget(retryAfter: 2))
        // The gateway's budget (burst 20) is nearly untouched: 15 others still get in at once.
        let others = (0..<15).map { budget.take(device: "d\($0)", perDevicePerMinute: 30, gatewayPerSecond: 10, nowNanos: 1000 * ms) }
        #expect(others.allSatisfy { $0 == .allowed })
    }

    @Test func theGatewayBudgetStillCapsAllDevices() {
        var budget = ConnectBudget(nowNanos: 0)
        let decisions = (0..<30).map { budget.take(device: "d\($0)", perDevicePerMinute: 30, gatewayPerSecond: 10, nowNanos: 0) }
        #expect(decisions.filter { $0 == .allowed }.count == 20)
        #expect(decisions.last == .gatewayOverBudget)
    }

    @Test func aRefusalByTheGatewayDoesNotChargeTheDevice() {
        var budget = ConnectBudget(nowNanos: 0)
        for i in 0..<2 { _ = budget.take(device: "x\(i)", perDevicePerMinute: 60, gatewayPerSecond: 1, nowNanos: 0) }
        #expect(budget.take(device: "d", perDevicePerMinute: 60, gatewayPerSecond: 1, nowNanos: 0) == .gatewayOverBudget)
        // 10 s later the gateway has room again and the device still has its full burst of 10.
        let later = (0..<10).map { _ in budget.take(device: "d", perDevicePerMinute: 60, gatewayPerSecond: 100, nowNanos: 10_000 * ms) }
        #expect(later.allSatisfy { $0 == .allowed })
    }

    @Test func zeroTurnsThePerDeviceBudgetOff() {
        var budget = ConnectBudget(nowNanos: 0)
        let decisions = (0..<100).map { _ in budget.take(device: "d", perDevicePerMinute: 0, gatewayPerSecond: 0, nowNanos: 0) }
        #expect(decisions.allSatisfy { $0 == .allowed } && budget.trackedDevices == 0)
    }

    @Test func devicesWhoseBudgetRefilledAreForgotten() {
        var budget = ConnectBudget(nowNanos: 0)
        for second in 0..<100 {
            for i in 0..<500 {
                _ = budget.take(device: "s\(second)-\(i)", perDevicePerMinute: 30, gatewayPerSecond: 0, nowNanos: UInt64(second) * 1000 * ms)
            }
        }
        // Ten seconds' worth of devices (their buckets are not full yet), twice over at most.
        #expect(budget.trackedDevices <= 2 * 11 * 500)
    }
}
