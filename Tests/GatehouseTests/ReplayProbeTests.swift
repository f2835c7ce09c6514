import Testing

@testable import Gatehouse

@Suite struct ReplayProbeTests {
    let first = SpoolEntry(topic: "t/a", payload: [1], receivedAt: 0)
    let second = SpoolEntry(topic: "t/b", payload: [2], receivedAt: 0)

    @Test func aLossWithPublishesUnansweredNarrowsTheWindowWhichGrowsWithEachAnswer() {
        var probe = ReplayProbe()
        probe.connectionLost(unanswered: 0)
        #expect(probe.window == nil)
        probe.connectionLost(unanswered: 5)
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
        probe.connectionLost(unanswered: 3)
        for loss in 1...ReplayProbe.lossesToRefuse {
            let setAside1 = probe.setsAside(first)
            #expect(!setAside1, "after \(loss - 1) losses")
            probe.publishing(first)
            probe.connectionLost(unanswered: 1)
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
        probe.connectionLost(unanswered: 2)
        for _ in 1..<ReplayProbe.lossesToRefuse {
            probe.publishing(first)
            probe.connectionLost(unanswered: 1)
        }
        probe.publishing(second)
        probe.connectionLost(unanswered: 1)
        probe.publishing(first)
        probe.connectionLost(unanswered: 1)
        let setAside5 = probe.setsAside(first)
        #expect(!setAside5)
        // With the first answered, the count is gone too.
        for _ in 1..<ReplayProbe.lossesToRefuse {
            probe.publishing(first)
            probe.connectionLost(unanswered: 1)
        }
        probe.answered(fullWindow: 8)
        probe.connectionLost(unanswered: 1)
        probe.publishing(first)
        probe.connectionLost(unanswered: 1)
        let setAside6 = probe.setsAside(first)
        #expect(!setAside6)
    }

    /// Only a loss while the entry was out alone counts: not one with other publishes unanswered, nor one at full speed.
    @Test func aLossWithOthersUnansweredCountsNothing() {
        var probe = ReplayProbe()
        for _ in 1...ReplayProbe.lossesToRefuse + 1 {
            probe.publishing(first)
            probe.connectionLost(unanswered: 1)  // the first time at full speed: the window was not one
        }
        let setAside7 = probe.setsAside(first)
        #expect(setAside7)  // the last three counted
        probe.connectionLost(unanswered: 2)
        for _ in 1...ReplayProbe.lossesToRefuse {
            probe.publishing(first)
            probe.connectionLost(unanswered: 2)
        }
        let setAside8 = probe.setsAside(first)
        #expect(!setAside8)
    }
}
