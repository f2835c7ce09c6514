#if canImport(Glibc)
@testable import Mosquitto
import Glibc
import Testing

/// The broker's socket's low-water mark, on a real TCP connection over loopback: the kernel's side is read back
/// with `getsockopt` and `poll`, as the network thread's wait sees it.
@Suite struct PubackCoalescingTests {
    private static let patience = PubackCoalescing.initialPatience
    private static let mark = Int32(10 * PubackCoalescing.pubackBytes)

    @Test func theMarkAsksForHalfThePubacksOwedAndNoMoreThanItsCap() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        let now = ContinuousClock.now
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: now) == Self.patience)
        #expect(receiveLowWaterMark(ours) == Self.mark)
        // Fewer than four owed: the first is worth waking for, and the caller waits as it would.
        #expect(coalescing.prepare(ours, owed: 3, answered: 0, now: now) == nil)
        #expect(receiveLowWaterMark(ours) == 1)
        // A broker with a large Receive Maximum: a device's ack does not wait for hundreds of others.
        #expect(coalescing.prepare(ours, owed: 1_000, answered: 0, now: now) == Self.patience)
        #expect(receiveLowWaterMark(ours) == Int32(PubackCoalescing.mostAcks * PubackCoalescing.pubackBytes))
        // Output waiting for the socket: the wait is for the socket to take it.
        #expect(coalescing.prepare(ours, owed: 0, answered: 0, now: now) == nil)
        #expect(receiveLowWaterMark(ours) == 1)
    }

    @Test func theSocketIsReadableOnlyAtTheMarkButReadsTakeWhatCame() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        _ = coalescing.prepare(ours, owed: 20, answered: 0, now: .now)
        try sendText(peer, String(repeating: "@", count: 36))
        try waitUntilArrived(ours, 36)
        #expect(!readable(ours))
        try sendText(peer, "@@@@")
        try waitUntilArrived(ours, 40)
        #expect(readable(ours))
        #expect(try receiveText(ours).count == 40)
        // Below the mark a read still takes what has come, and a peer that closes makes the socket readable.
        try sendText(peer, "@@@@")
        try waitUntilArrived(ours, 4)
        #expect(!readable(ours))
        #expect(try receiveText(ours) == "@@@@")
        shutdown(peer, Int32(SHUT_WR))
        #expect(readable(ours, withinMilliseconds: 5000))
    }

    /// Wake-ups (publishes queued) do not restart the wait: what came below the mark is read `patience` after the
    /// first wait began, however often the thread was woken meanwhile, also when a wake-up ended every wait since.
    @Test func wakeUpsKeepTheDeadlineOfTheFirstWait() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        let start = ContinuousClock.now
        let woken = start + Self.patience * 0.6
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: start) == Self.patience)
        #expect(coalescing.waitEnded(ours, readable: false, ranOut: false) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: woken) == Self.patience - (woken - start))
        #expect(coalescing.waitEnded(ours, readable: false, ranOut: false) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: start + Self.patience) == nil)
        #expect(receiveLowWaterMark(ours) == 1)
        // Readable: a new wait gets the whole patience again.
        #expect(coalescing.waitEnded(ours, readable: true, ranOut: false) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 10, now: start + .seconds(1)) != nil)
        #expect(receiveLowWaterMark(ours) == Self.mark)
    }

    @Test func aWaitThatRunsOutHasWhatCameReadAndIsFollowedByOneForTheFirstByte() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        let start = ContinuousClock.now
        _ = coalescing.prepare(ours, owed: 20, answered: 0, now: start)
        try sendText(peer, "@@@@")
        try waitUntilArrived(ours, 4)
        #expect(!readable(ours))
        #expect(coalescing.waitEnded(ours, readable: false, ranOut: true) == true)
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: start + Self.patience) == nil)
        #expect(readable(ours))
        // Until the socket is readable: a wake-up does not end it.
        #expect(coalescing.waitEnded(ours, readable: false, ranOut: false) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: start + Self.patience) == nil)
        #expect(coalescing.waitEnded(ours, readable: true, ranOut: false) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 20, now: start + Self.patience) != nil)
        #expect(receiveLowWaterMark(ours) == Self.mark)
        // A wait without a raised mark that runs out (an idle connection) is neither.
        _ = coalescing.prepare(ours, owed: 0, answered: 0, now: start)
        #expect(coalescing.waitEnded(ours, readable: false, ranOut: true) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 20, now: start + .seconds(1)) == coalescing.patience)
    }

    /// A broker with Nagle's algorithm on sends its first PUBACK and holds the rest back until it is acknowledged:
    /// every wait runs out with that one waiting, and the coalescing goes on all the same (it is what paces such a
    /// broker), one wait for the first byte after each.
    @Test func waitsThatKeepRunningOutWithAPubackWaitingKeepTheMark() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        var now = ContinuousClock.now
        for round in 1...10 {
            try sendText(peer, "@@@@")
            try waitUntilArrived(ours, 4)
            #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: now) != nil, "round \(round)")
            #expect(receiveLowWaterMark(ours) == Self.mark)
            now += PubackCoalescing.longestPatience
            #expect(coalescing.waitEnded(ours, readable: false, ranOut: true) == true)
            #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: now) == nil)
            #expect(try receiveText(ours) == "@@@@")
            #expect(coalescing.waitEnded(ours, readable: true, ranOut: false) == false)
        }
    }

    /// A busy broker, slow for a moment, mostly has sent nothing at all by the end of the wait: nothing to read,
    /// and the next wait is for its first byte.
    @Test func aWaitThatRunsOutWithNothingWaitingReadsNothing() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        let now = ContinuousClock.now
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: now) == Self.patience)
        #expect(coalescing.waitEnded(ours, readable: false, ranOut: true) == false)
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: now + Self.patience) == nil)
        #expect(receiveLowWaterMark(ours) == 1)
    }

    /// A broker that had answered all it owed by the time the PUBACKs it held back came waited for this thread: the
    /// patience shrinks, down to its shortest. One still busy gets more, up to the longest.
    @Test func thePatienceFollowsHowMuchTheBrokerHadAnsweredAfterARunOut() throws {
        let (ours, peer) = try tcpPair(bufferSize: 1 << 16)
        defer { closeBoth(ours, peer) }
        var coalescing = PubackCoalescing()
        var answered = 0
        /// One wait that runs out, then the wait for the first byte, which ends readable; `fetched` PUBACKs came.
        func runOut(fetched: Int) -> Duration? {
            let now = ContinuousClock.now
            let patience = coalescing.prepare(ours, owed: 20, answered: answered, now: now)
            _ = coalescing.waitEnded(ours, readable: false, ranOut: true)
            _ = coalescing.prepare(ours, owed: 20, answered: answered, now: now)
            _ = coalescing.waitEnded(ours, readable: true, ranOut: false)
            answered += fetched
            return patience
        }
        #expect(runOut(fetched: 20) == Self.patience)
        #expect(coalescing.prepare(ours, owed: 20, answered: answered, now: .now) == Self.patience * 0.75)
        #expect(coalescing.waitEnded(ours, readable: true, ranOut: false) == false)
        for _ in 0..<20 { _ = runOut(fetched: 25) }
        #expect(coalescing.patience == PubackCoalescing.shortestPatience)
        for _ in 0..<20 { _ = runOut(fetched: 19) }
        _ = coalescing.prepare(ours, owed: 20, answered: answered, now: .now)
        #expect(coalescing.patience == PubackCoalescing.longestPatience)
        // A wake-up that ends the wait for the first byte is not judged: the broker's bytes are.
        let before = coalescing.patience
        _ = coalescing.waitEnded(ours, readable: false, ranOut: true)
        _ = coalescing.prepare(ours, owed: 20, answered: answered, now: .now)
        _ = coalescing.waitEnded(ours, readable: false, ranOut: false)
        #expect(coalescing.prepare(ours, owed: 20, answered: answered, now: .now) == nil)
        #expect(coalescing.patience == before)
        _ = coalescing.waitEnded(ours, readable: true, ranOut: false)
        answered += 20
        _ = coalescing.prepare(ours, owed: 20, answered: answered, now: .now)
        #expect(coalescing.patience == before * 0.75)
        _ = coalescing.waitEnded(ours, readable: true, ranOut: false)
        // It is the broker's: a new connection keeps it.
        coalescing.reset()
        #expect(coalescing.patience == before * 0.75)
        #expect(coalescing.prepare(ours, owed: 20, answered: 0, now: .now) == before * 0.75)
    }
}

private func receiveLowWaterMark(_ fd: Int32) -> Int32 {
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    _ = getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &value, &length)
    return value
}

/// Whether `poll` reports the socket readable now (or within `milliseconds`).
private func readable(_ fd: Int32, withinMilliseconds milliseconds: Int32 = 0) -> Bool {
    var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&probe, 1, milliseconds) == 1 && probe.revents & Int16(POLLIN) != 0
}
#endif
