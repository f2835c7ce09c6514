import Testing

@testable import Gatehouse

/// A device's patches go one at a time, in the order they came; other devices' do not wait for them.
@Suite struct PatchLineTests {
    @Test func patchesWaitForTheOneOnItsWayAndFollowInOrder() {
        var line = PatchLine<Int>()
        #expect(line.arrive(1, bytes: 1, device: "a") == .applyNow)
        #expect(line.arrive(2, bytes: 1, device: "a") == .waits)
        #expect(line.arrive(3, bytes: 1, device: "a") == .waits)
        #expect(line.arrive(10, bytes: 1, device: "b") == .applyNow)  // another device's
        #expect(line.count == 2)
        #expect(line.next(device: "a") == 2)
        #expect(line.next(device: "a") == 3)
        #expect(line.next(device: "a") == nil)
        // The line is empty: the next patch goes at once.
        #expect(line.arrive(4, bytes: 1, device: "a") == .applyNow)
        #expect(line.count == 0)
    }

    /// At shutdown every waiting patch is taken out (to be answered, not applied), and the ones on their way find
    /// nothing behind them.
    @Test func drainTakesEveryWaitingPatchInOrder() {
        var line = PatchLine<Int>()
        for patch in 1...3 { _ = line.arrive(patch, bytes: 10, device: "a") }
        for patch in 10...11 { _ = line.arrive(patch, bytes: 10, device: "b") }
        let drained = line.drain()
        #expect(drained.filter { $0.device == "a" }.map(\.patch) == [2, 3])
        #expect(drained.filter { $0.device == "b" }.map(\.patch) == [11])
        #expect(line.count == 0 && line.bytes == 0)
        #expect(line.next(device: "a") == nil && line.next(device: "b") == nil)
        // Closed: whatever arrives after is refused, even for a device with nothing on its way.
        #expect(line.arrive(4, bytes: 1, device: "a") == .closed && line.arrive(20, bytes: 1, device: "c") == .closed)
        #expect(line.next(device: "a") == nil)
    }

    @Test func beyondItsLimitAPatchIsRefusedAndTheOthersStillGo() {
        var line = PatchLine<Int>(limits: .init(perDevice: 10, patches: 2, bytes: 100))
        #expect(line.arrive(1, bytes: 1, device: "a") == .applyNow)
        #expect(line.arrive(2, bytes: 1, device: "a") == .waits)
        #expect(line.arrive(3, bytes: 1, device: "b") == .applyNow)  // on its way: not counted as waiting
        #expect(line.arrive(4, bytes: 1, device: "b") == .waits)
        #expect(line.arrive(5, bytes: 1, device: "a") == .full)
        #expect(line.next(device: "a") == 2)
        #expect(line.arrive(5, bytes: 1, device: "a") == .waits)
        #expect(line.next(device: "a") == 5)
        #expect(line.next(device: "b") == 4)
    }

    @Test func oneDeviceWaitsForAtMostItsShareAndTheBytesAreBounded() {
        var line = PatchLine<Int>(limits: .init(perDevice: 2, patches: 10, bytes: 100))
        #expect(line.arrive(0, bytes: 1, device: "a") == .applyNow)
        #expect(line.arrive(1, bytes: 1, device: "a") == .waits)
        #expect(line.arrive(2, bytes: 1, device: "a") == .waits)
        #expect(line.arrive(3, bytes: 1, device: "a") == .full)  // the device's share
        #expect(line.arrive(10, bytes: 1, device: "b") == .applyNow)
        #expect(line.arrive(11, bytes: 90, device: "b") == .waits)
        #expect(line.arrive(12, bytes: 9, device: "b") == .full)  // 1 + 1 + 90 + 9 > 100
        #expect(line.bytes == 92)
        #expect(line.next(device: "b") == 11)
        #expect(line.bytes == 2)
        #expect(line.arrive(12, bytes: 9, device: "b") == .waits)
    }
}
