#if canImport(Glibc)
@testable import Mosquitto
import Glibc
import Testing

/// The network thread's wait, bounded finer than a millisecond (``PubackCoalescing/patience``), on a real TCP pair.
@Suite struct LoopWakerTests {
    @Test func aWaitRunsOutAfterItsTimeoutToTheMicrosecond() throws {
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
