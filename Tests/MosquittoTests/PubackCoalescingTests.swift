#if canImport(Glibc)
@testable import Mosquitto
import Glibc
import Testing

/// The broker's socket's low-water mark, on a real TCP connection over loopback: the kernel's side is read back
/// with `getsockopt` and `poll`, as the network thread's wait sees it.
@Suite struct PubackCoalescingTests {
    @Test func theMarkAsksForHalfThePubacksOwedAndNoMoreThanItsCap() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        let now = ContinuousClock.now
        #expect(coalescing.prepare(ours, expectedAcks: 20, now: now) == PubackCoalescing.wait)
        #expect(receiveLowWaterMark(ours) == 40)
        // Fewer than four owed: the first is worth waking for.
        #expect(coalescing.prepare(ours, expectedAcks: 3, now: now) == PubackCoalescing.idleWait)
        #expect(receiveLowWaterMark(ours) == 1)
        // A broker with a large Receive Maximum: a device's ack does not wait for hundreds of others.
        #expect(coalescing.prepare(ours, expectedAcks: 1_000, now: now) == PubackCoalescing.wait)
        #expect(receiveLowWaterMark(ours) == Int32(PubackCoalescing.mostAcks * PubackCoalescing.pubackBytes))
        // Output waiting for the socket: the wait is for the socket to take it.
        #expect(coalescing.prepare(ours, expectedAcks: 0, now: now) == PubackCoalescing.idleWait)
        #expect(receiveLowWaterMark(ours) == 1)
    }

    @Test func theSocketIsReadableOnlyAtTheMarkButReadsTakeWhatCame() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        _ = coalescing.prepare(ours, expectedAcks: 20, now: .now)
        try sendText(peer, String(repeating: "@", count: 36))
        // Loopback delivers within the send: the bytes are there, and not enough.
        #expect(kernelBytes(ours) == 36)
        #expect(readable(ours) == false)
        try sendText(peer, "@@@@")
        #expect(readable(ours) == true)
        #expect(try receiveText(ours).count == 40)
        // Below the mark a read still takes what has come, and a peer that closes makes the socket readable.
        try sendText(peer, "@@@@")
        #expect(readable(ours) == false)
        #expect(try receiveText(ours) == "@@@@")
        shutdown(peer, Int32(SHUT_WR))
        #expect(readable(ours) == true)
    }

    @Test func aWaitThatRunsOutIsFollowedByOneForTheFirstByte() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        let start = ContinuousClock.now
        _ = coalescing.prepare(ours, expectedAcks: 20, now: start)
        try sendText(peer, "@@@@")
        #expect(readable(ours) == false)
        coalescing.waitRanOut(ours, now: start + .milliseconds(5))
        #expect(coalescing.prepare(ours, expectedAcks: 20, now: start + .milliseconds(5)) == PubackCoalescing.idleWait)
        #expect(readable(ours) == true)
        // One wait only, and not yet paused.
        #expect(coalescing.prepare(ours, expectedAcks: 20, now: start + .milliseconds(6)) == PubackCoalescing.wait)
        #expect(receiveLowWaterMark(ours) == 40)
        #expect(!coalescing.isPaused)
        // A wait with the kernel's mark that runs out (an idle connection) is no strike.
        _ = coalescing.prepare(ours, expectedAcks: 0, now: start)
        coalescing.waitRanOut(ours, now: start + .seconds(1))
        coalescing.waitRanOut(ours, now: start + .seconds(1))
        coalescing.waitRanOut(ours, now: start + .seconds(1))
        #expect(!coalescing.isPaused)
    }

    /// A broker with Nagle's algorithm on: its first PUBACK waits, the rest are held back.
    @Test func strikesWithinThePauseTurnTheCoalescingOffForThePause() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        try sendText(peer, "@@@@")
        var coalescing = PubackCoalescing()
        let start = ContinuousClock.now
        var now = start
        for strike in 1...PubackCoalescing.strikes {
            #expect(!coalescing.isPaused)
            #expect(coalescing.prepare(ours, expectedAcks: 20, now: now) == PubackCoalescing.wait, "strike \(strike)")
            now += .milliseconds(5)
            coalescing.waitRanOut(ours, now: now)
            _ = coalescing.prepare(ours, expectedAcks: 20, now: now)  // the wait for the first byte
            now += .milliseconds(100)
        }
        #expect(coalescing.isPaused)
        let paused = now - .milliseconds(100)
        #expect(coalescing.prepare(ours, expectedAcks: 20, now: now) == PubackCoalescing.idleWait)
        #expect(receiveLowWaterMark(ours) == 1)
        #expect(coalescing.prepare(ours, expectedAcks: 20, now: paused + PubackCoalescing.pause - .milliseconds(1)) == PubackCoalescing.idleWait)
        #expect(coalescing.prepare(ours, expectedAcks: 20, now: paused + PubackCoalescing.pause) == PubackCoalescing.wait)
        #expect(receiveLowWaterMark(ours) == 40)
        #expect(!coalescing.isPaused)
    }

    /// A broker slow for a moment (a busy box) mostly leaves nothing at all by the end of the wait.
    @Test func waitsThatRunOutWithNothingWaitingAreNoStrikes() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        var now = ContinuousClock.now
        for _ in 0..<(PubackCoalescing.strikes * 2) {
            #expect(coalescing.prepare(ours, expectedAcks: 20, now: now) == PubackCoalescing.wait)
            now += .milliseconds(5)
            coalescing.waitRanOut(ours, now: now)
            #expect(coalescing.prepare(ours, expectedAcks: 20, now: now) == PubackCoalescing.idleWait)
        }
        #expect(!coalescing.isPaused)
        try sendText(peer, "@@@@")
        for _ in 0..<PubackCoalescing.strikes {
            _ = coalescing.prepare(ours, expectedAcks: 20, now: now)
            coalescing.waitRanOut(ours, now: now)
            _ = coalescing.prepare(ours, expectedAcks: 20, now: now)
        }
        #expect(coalescing.isPaused)
    }

    @Test func strikesFurtherApartThanThePauseNeverTurnItOff() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        try sendText(peer, "@@@@")
        var coalescing = PubackCoalescing()
        var now = ContinuousClock.now
        for _ in 0..<(PubackCoalescing.strikes * 3) {
            #expect(coalescing.prepare(ours, expectedAcks: 20, now: now) == PubackCoalescing.wait)
            coalescing.waitRanOut(ours, now: now)
            _ = coalescing.prepare(ours, expectedAcks: 20, now: now)
            now += PubackCoalescing.pause / (PubackCoalescing.strikes - 1)
        }
        #expect(!coalescing.isPaused)
    }
}

private func receiveLowWaterMark(_ fd: Int32) -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    _ = getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, &length)
    return value
}

/// Whether `poll` reports the socket readable now.
private func readable(_ fd: Int32) -> Bool {
    var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&probe, 1, 0) == 1 && probe.revents & Int16(POLLIN) != 0
}
#endif
