import Testing

@testable import Gatehouse

/// A device's patches go one at a time, in the order they came; other devices' do not wait for them.
@Suite struct PatchLineTests {
    @Test func patchesWaitForTheOneOnItsWayAndFollowInOrder() {
        var line = PatchLine<Int>()
        #expect(line.arrive(1, device: "a") == .applyNow)
        #expect(line.arrive(2, device: "a") == .waits)
        #expect(line.arrive(3, device: "a") == .waits)
        #expect(line.arrive(10, device: "b") == .applyNow)  // another device's
        #expect(line.count == 2)
        #expect(line.next(device: "a") == 2)
        #expect(line.next(device: "a") == 3)
        #expect(line.next(device: "a") == nil)
        // The line is empty: the next patch goes at once.
        #expect(line.arrive(4, device: "a") == .applyNow)
        #expect(line.count == 0)
    }

    @Test func beyondItsLimitAPatchIsRefusedAndTheOthersStillGo() {
        var line = PatchLine<Int>(maxWaiting: 2)
        #expect(line.arrive(1, device: "a") == .applyNow)
        #expect(line.arrive(2, device: "a") == .waits)
        #expect(line.arrive(3, device: "b") == .applyNow)  // on its way: not counted as waiting
        #expect(line.arrive(4, device: "b") == .waits)
        #expect(line.arrive(5, device: "a") == .full)
        #expect(line.next(device: "a") == 2)
        #expect(line.arrive(5, device: "a") == .waits)
        #expect(line.next(device: "a") == 5)
        #expect(line.next(device: "b") == 4)
    }
}
