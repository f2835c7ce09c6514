import Testing

@testable import Gatehouse

@Suite struct ReplayProbeTests {
    let first = SpoolEntry(topic: "t/a", payload: [1], receivedAt: 0)
    let second = SpoolEntry(topic: "t/b", payload: [2], receivedAt: 0)
    let now = ContinuousClock.now

    @Test func aLossWithPublishesUnansweredNarrowsTheWindowWhichGrowsWithEachAnswer() {
        var probe = ReplayProbe()
        probe.connectionLost(unanswered: 0, at: now)
        #expect(probe.window == nil)
        probe.connectionLost(unanswered: 5, at: now)
        #expect(probe.window == 1)
        for expected in [2, 3] {
            probe.answered(fullWindow: 4)
            #expect(probe.window == expected)
        }
        probe.answered(fullWindow: 4)
        #expect(probe.window == nil)
    }

    @Test func anEntryOutAloneAtThreeLossesInARowIsSetAsideOnce() {
        var probe = ReplayProbe()
        probe.connectionLost(unanswered: 3, at: now)
        for loss in 1...ReplayProbe.lossesToRefuse {
            let setAside1 = probe.setsAside(first)
            #expect(!setAside1, "after \(loss - 1) losses")
            probe.publishing(first, at: now)
            probe.connectionLost(unanswered: 1, at: now)
        }
        let setAside2 = probe.setsAside(second)
        #expect(!setAside2)
        let setAside3 = probe.setsAside(first)
        #expect(setAside3)
        let setAside4 = probe.setsAside(first)
        #expect(!setAside4)
        #expect(probe.window == 1)
    }

    @Test func anAnswerOrAnotherEntryOutAloneStartsTheCountAgain() {
        var probe = ReplayProbe()
        probe.connectionLost(unanswered: 2, at: now)
        for _ in 1..<ReplayProbe.lossesToRefuse {
            probe.publishing(first, at: now)
            probe.connectionLost(unanswered: 1, at: now)
        }
        probe.publishing(second, at: now)
        probe.connectionLost(unanswered: 1, at: now)
        probe.publishing(first, at: now)
        probe.connectionLost(unanswered: 1, at: now)
        let setAside5 = probe.setsAside(first)
        #expect(!setAside5)
        // With the first answered, the count is gone too.
        for _ in 1..<ReplayProbe.lossesToRefuse {
            probe.publishing(first, at: now)
            probe.connectionLost(unanswered: 1, at: now)
        }
        probe.answered(fullWindow: 8)
        probe.connectionLost(unanswered: 1, at: now)
        probe.publishing(first, at: now)
        probe.connectionLost(unanswered: 1, at: now)
        let setAside6 = probe.setsAside(first)
        #expect(!setAside6)
    }

    /// Only a loss soon after the entry went out alone counts (other publishes unanswered beside it do not matter),
    /// and not one at full speed.
    @Test func onlyALossSoonAfterTheEntryWentOutAloneCounts() {
        var probe = ReplayProbe()
        for _ in 1...ReplayProbe.lossesToRefuse + 1 {
            probe.publishing(first, at: now)
            probe.connectionLost(unanswered: 2, at: now)  // the first time at full speed: the window was not one
        }
        let counted = probe.setsAside(first)
        #expect(counted)
        for _ in 1...ReplayProbe.lossesToRefuse {
            probe.publishing(first, at: now)
            probe.connectionLost(unanswered: 1, at: now + ReplayProbe.closeWithin + .milliseconds(1))
        }
        let late = probe.setsAside(first)
        #expect(!late)
    }
}
