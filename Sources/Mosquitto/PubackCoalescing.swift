#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lets the network thread sleep until several PUBACKs have arrived, instead of waking for each: the broker's socket
/// counts as readable only once it holds the bytes of half the PUBACKs the broker owes (`SO_RCVLOWAT`). A broker
/// writes each PUBACK as it handles its publish, so the network thread woke for one or two at a time, sent as many
/// publishes, and woke the devices' event loops for as many acks: two or three sleeps and wake-ups per message
/// when the broker was busy, most of the gateway's CPU on a virtual machine (docs/benchmarks.md, "Optimisations").
/// Half, so that the broker still has the other half to handle while this thread answers.
///
/// A wait with a raised mark ends after ``wait`` whatever the socket holds, and the next one is for the first byte
/// again: a broker that is slow for a moment (a busy box) delays some acks by that much, no more. A broker with
/// Nagle's algorithm on (mosquitto's default, `set_tcp_nodelay false`) often keeps the mark from being reached: it
/// sends its first PUBACK and holds the rest until that one's TCP acknowledgement, which the kernel delays while
/// nothing reads it (40 ms or more). Its waits run out with that first PUBACK waiting, where a slow broker's mostly
/// run out with nothing: ``strikes`` waits that run out with bytes waiting, within ``pause``, turn the coalescing off
/// for ``pause``. Such a broker costs three waits of 5 ms every 5 seconds at most, and the thread wakes as it did
/// before. Nothing else depends on the mark: the socket is readable at once when the broker closes it or fails, a
/// wake-up (a publish queued) ends the wait as always, and a read takes whatever has arrived.
struct PubackCoalescing {
    /// A PUBACK without properties (MQTT 5 and 3.1.1 alike).
    static let pubackBytes = 4
    /// The most PUBACKs a wait holds out for: a broker with a large Receive Maximum would otherwise keep a device's
    /// ack waiting for hundreds of others.
    static let mostAcks = 32
    /// How long a wait with a raised mark lasts at most, in milliseconds: long enough for a busy box's broker to
    /// answer half its window (2 ms ran out a few times a second in `make bench`'s flow with a subscriber; 5 never).
    static let wait: Int32 = 5
    /// How many waits that run out with bytes waiting, within ``pause``, turn the coalescing off, and for how long.
    static let strikes = 3
    static let pause: Duration = .seconds(5)
    /// How long any other wait lasts, in milliseconds (a pass then keeps the connection alive).
    static let idleWait: Int32 = 1000

    private var mark: Int32 = 1
    /// A wait ran out: the next one is for what has come.
    private var lowerOnce = false
    /// Waits that ran out with bytes waiting since `strikesSince`.
    private var ranOut = 0
    private var strikesSince: ContinuousClock.Instant?
    private var pausedUntil: ContinuousClock.Instant?

    /// The socket's low-water mark as this struct last set it.
    var lowWaterMark: Int32 { mark }

    /// Whether waits ran out lately, and the coalescing is off.
    var isPaused: Bool { pausedUntil != nil }

    /// Sets `socket`'s low-water mark for the PUBACKs the broker owes (`expectedAcks`: publishes sent and not
    /// answered; 0 while output waits for the socket, which the wait is then for) and returns how long the wait
    /// may last, in milliseconds.
    mutating func prepare(_ socket: Int32, expectedAcks: Int, now: @autoclosure () -> ContinuousClock.Instant) -> Int32 {
        if let until = pausedUntil, now() >= until { pausedUntil = nil }
        let acks = pausedUntil == nil && !lowerOnce ? min(expectedAcks / 2, Self.mostAcks) : 0
        lowerOnce = false
        let wanted = acks > 1 ? Int32(acks * Self.pubackBytes) : 1
        if wanted != mark {
            var value = wanted
            // A mark the socket refuses leaves the thread waking as it did before: no harm.
            if setsockopt(socket, SOL_SOCKET, SO_RCVLOWAT, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 { mark = wanted }
        }
        return mark > 1 ? Self.wait : Self.idleWait
    }

    /// The wait on `socket` ended with nothing ready: with a raised mark, the broker is slow or holds its PUBACKs
    /// back. The next wait is for the first byte; ``strikes`` such waits with bytes waiting, within ``pause``, turn
    /// the coalescing off for ``pause``.
    mutating func waitRanOut(_ socket: Int32, now: ContinuousClock.Instant) {
        guard mark > 1 else { return }
        lowerOnce = true
        var waiting: Int32 = 0
        guard ioctl(socket, UInt(FIONREAD), &waiting) == 0, waiting > 0 else { return }
        if let since = strikesSince, now - since < Self.pause {
            ranOut += 1
        } else {
            (strikesSince, ranOut) = (now, 1)
        }
        guard ranOut >= Self.strikes else { return }
        pausedUntil = now + Self.pause
        strikesSince = nil
    }

    /// The connection ended: its successor's socket starts with the kernel's mark (1 byte).
    mutating func reset() {
        self = PubackCoalescing()
    }
}
