import NIOCore
import NIOEmbedded
import Testing

@testable import Gatehouse

/// The wheel on an `EmbeddedEventLoop`, whose clock moves only when the test says: each member beaten once a
/// period, from a period after it joined; members removed (also in the middle of a tick) are beaten no more.
@Suite struct HeartbeatWheelTests {
    final class Member: HeartbeatMember {
        var heartbeatPosition: HeartbeatWheel.Position?
        var beats: [UInt64] = []
        let loop: EmbeddedEventLoop
        /// Runs in its beat (a beat that ends connections).
        var onBeat: () -> Void = {}

        init(_ loop: EmbeddedEventLoop) { self.loop = loop }

        func heartbeat() {
            beats.append(loop.now.uptimeNanoseconds / 1_000_000)
            onBeat()
        }
    }

    let loop = EmbeddedEventLoop()
    /// 16 ticks of 100 ms.
    let wheel: HeartbeatWheel

    init() {
        wheel = HeartbeatWheel(period: .milliseconds(1600), loop: loop)
    }

    func advance(ms: Int64) { loop.advanceTime(by: .milliseconds(ms)) }

    @Test func aMemberIsBeatenOnceAPeriodFromAPeriodAfterItJoined() {
        let member = Member(loop)
        wheel.add(member)
        advance(ms: 1599)
        #expect(member.beats.isEmpty)
        advance(ms: 1 + 1600 * 3)
        #expect(member.beats == [1600, 3200, 4800, 6400])
    }

    @Test func membersThatJoinLaterAreBeatenOnTheirOwnTicks() {
        let first = Member(loop), second = Member(loop)
        wheel.add(first)
        advance(ms: 550)
        wheel.add(second)
        advance(ms: 1600 * 2)
        #expect(first.beats == [1600, 3200])
        // It joined between ticks 5 and 6: beaten first on the tick before its period was over.
        #expect(second.beats == [2100, 3700])
    }

    @Test func aRemovedMemberIsNotBeatenAndTheOthersOfItsSlotStill() {
        let members = (0..<3).map { _ in Member(loop) }
        for member in members { wheel.add(member) }
        wheel.remove(members[0])  // the last one takes its place
        #expect(members[0].heartbeatPosition == nil)
        advance(ms: 1600)
        #expect(members.map(\.beats) == [[], [1600], [1600]])
        wheel.remove(members[2])
        wheel.remove(members[2])  // not in any more: nothing happens
        advance(ms: 1600)
        #expect(members.map(\.beats) == [[], [1600, 3200], [1600]])
    }

    @Test func aBeatThatEndsAnotherMemberOfItsTickSkipsIt() {
        let ending = Member(loop), ended = Member(loop), other = Member(loop)
        for member in [ending, ended, other] { wheel.add(member) }
        ending.onBeat = { [wheel, unowned ending] in
            wheel.remove(ending)
            wheel.remove(ended)
        }
        advance(ms: 1600)
        #expect(ending.beats == [1600] && ended.beats.isEmpty && other.beats == [1600])
        advance(ms: 1600)
        #expect(ending.beats == [1600] && other.beats == [1600, 3200])
    }

    @Test func anEmptyWheelStopsItsTimerAndStartsAgainWithTheNextMember() {
        let member = Member(loop)
        wheel.add(member)
        advance(ms: 250)
        wheel.remove(member)
        advance(ms: 5000)
        let later = Member(loop)
        wheel.add(later)
        advance(ms: 1600)
        // A period after it joined (5250 ms), on a timer that started with it.
        #expect(member.beats.isEmpty && later.beats == [6850])
    }
}
