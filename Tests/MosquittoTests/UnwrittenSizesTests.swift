@testable import Mosquitto
import Testing

/// The sizes of large QoS 0 publishes by id, with the writes libmosquitto reports before their sender registered them.
@Suite struct UnwrittenSizesTests {
    @Test func aRegisteredPublishIsUnwrittenUntilItsWriteIsReported() {
        var sizes = UnwrittenSizes()
        sizes.beginSend()
        #expect(sizes.endSend(mid: 7, bytes: 4_096) == 4_096)
        #expect(!sizes.isEmpty)
        #expect(sizes.written(8) == 0)  // another id: a small publish's
        #expect(sizes.written(7) == 4_096)
        #expect(sizes.written(7) == 0)  // its bytes come off once
        #expect(sizes.isEmpty)
    }

    /// The network thread wrote it before the sender learned its id: the sender finds it written, and nothing stays
    /// counted.
    @Test func aWriteReportedBeforeTheSenderRegisteredIsFoundWrittenByIt() {
        var sizes = UnwrittenSizes()
        sizes.beginSend()
        #expect(sizes.written(7) == 0)
        #expect(sizes.endSend(mid: 7, bytes: 4_096) == 0)
        #expect(sizes.isEmpty)
        #expect(sizes.written(7) == 0)
    }

    /// Writes of small publishes reported while a large one was being sent are parked too; once no large send is in
    /// progress they are dropped, so that a later large publish given one of their ids is still counted.
    @Test func writesParkedWhileALargeSendWasInProgressAreDroppedWhenItEnds() {
        var sizes = UnwrittenSizes()
        sizes.beginSend()
        sizes.beginSend()
        #expect(sizes.written(3) == 0)  // small, parked: two large sends are in progress
        #expect(sizes.endSend(mid: 1, bytes: 10_000) == 10_000)
        #expect(sizes.written(4) == 0)  // parked: one is still in progress
        #expect(sizes.endSend(mid: 2, bytes: 20_000) == 20_000)
        sizes.beginSend()
        #expect(sizes.endSend(mid: 3, bytes: 30_000) == 30_000)
        #expect(sizes.written(4) == 0)  // no send in progress: not parked
        sizes.beginSend()
        #expect(sizes.endSend(mid: 4, bytes: 40_000) == 40_000)
        #expect([1, 2, 3, 4].map { sizes.written($0) } == [10_000, 20_000, 30_000, 40_000])
        #expect(sizes.isEmpty)
    }

    /// 65,535 publishes after a large one still unwritten, another large one is given its id: libmosquitto writes them
    /// oldest first, and each write takes off its own publish's bytes, once.
    @Test func anIdGivenAgainWhileItsEarlierPublishIsUnwrittenKeepsBothSizesInOrder() {
        var sizes = UnwrittenSizes()
        for bytes in [10_000, 20_000, 30_000] {
            sizes.beginSend()
            #expect(sizes.endSend(mid: 9, bytes: bytes) == bytes)
        }
        #expect([sizes.written(9), sizes.written(9), sizes.written(9), sizes.written(9)] == [10_000, 20_000, 30_000, 0])
        #expect(sizes.isEmpty)
    }

    @Test func aSendLibmosquittoDidNotTakeCountsNothing() {
        var sizes = UnwrittenSizes()
        sizes.beginSend()
        #expect(sizes.endSend(mid: nil, bytes: 4_096) == 0)
        #expect(sizes.isEmpty)
    }

    @Test func aFreshSessionForgetsEverything() {
        var sizes = UnwrittenSizes()
        sizes.beginSend()
        #expect(sizes.endSend(mid: 5, bytes: 4_096) == 4_096)
        sizes.removeAll()
        #expect(sizes.isEmpty)
        #expect(sizes.written(5) == 0)
    }
}
