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
