@testable import Mosquitto
import Synchronization
import Testing

@Suite struct AfterPassTests {
    @Test func elsewhereTheWorkRunsAtOnce() {
        var ran = false
        AfterPass.run { ran = true }
        #expect(ran)
    }

    @Test func onlyTheThreadMadeANetworkThreadIsOneAndOnlyMeanwhile() {
        #expect(!AfterPass.isNetworkThread)
        AfterPass.asNetworkThread { _ in #expect(AfterPass.isNetworkThread) }
        #expect(!AfterPass.isNetworkThread)
    }

    @Test func onANetworkThreadTheWorkWaitsForTheEndOfThePassInOrder() {
        var log: [String] = []
        AfterPass.asNetworkThread { endPass in
            AfterPass.run { log.append("first") }
            AfterPass.run { log.append("second") }
            log.append("pass")
            endPass()
            log.append("next pass")
        }
        #expect(log == ["pass", "first", "second", "next pass"])
    }

    @Test func workHandedInAtTheEndOfAPassRunsInThatPass() {
        var log: [String] = []
        AfterPass.asNetworkThread { endPass in
            AfterPass.run {
                log.append("outer")
                AfterPass.run { log.append("inner") }
            }
            endPass()
            log.append("next pass")
        }
        #expect(log == ["outer", "inner", "next pass"])
    }

    @Test func workLeftWhenTheThreadEndsRunsThenAndTheThreadIsOrdinaryAgain() {
        var log: [String] = []
        AfterPass.asNetworkThread { _ in AfterPass.run { log.append("left over") } }
        #expect(log == ["left over"])
        AfterPass.run { log.append("at once") }
        #expect(log == ["left over", "at once"])
    }
}
