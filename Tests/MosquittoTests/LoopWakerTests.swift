#if canImport(Glibc)
import CMosquitto
@testable import Mosquitto
import Glibc
import Testing

/// The network thread's wait, bounded finer than a millisecond (``PubackCoalescing/patience``), on a real TCP pair.
@Suite struct LoopWakerTests {
    @Test func aWaitRunsOutAfterItsTimeout() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        let waker = try LoopWaker()
        for timeout: Duration in [.microseconds(300), .milliseconds(20) + .microseconds(700)] {
            let start = ContinuousClock.now
            let (revents, ranOut, error) = waker.waitForSocket(ours, timeout: timeout) { Int16(POLLIN) }
            #expect(error == 0 && ranOut && revents == 0, "\(timeout)")
            #expect(ContinuousClock.now - start >= timeout)
        }
    }

    @Test func timeoutsReachPpollToTheNanosecond() {
        for (timeout, seconds, nanoseconds) in [
            (Duration.microseconds(300), 0, 300_000), (.milliseconds(1_500), 1, 500_000_000),
            (.nanoseconds(999_999_999), 0, 999_999_999), (.seconds(-1), 0, 0), (.zero, 0, 0),
        ] {
            let limit = LoopWaker.timeLimit(timeout)
            #expect(limit.tv_sec == seconds && limit.tv_nsec == nanoseconds, "\(timeout)")
        }
    }

    @Test func aReadySocketEndsTheWaitAtOnce() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        let waker = try LoopWaker()
        try sendText(peer, "@")
        try waitUntilArrived(ours, 1)
        let (revents, ranOut, error) = waker.waitForSocket(ours, timeout: .seconds(60)) { Int16(POLLIN) }
        #expect(error == 0 && !ranOut && revents & Int16(POLLIN) != 0)
    }
}
#endif
