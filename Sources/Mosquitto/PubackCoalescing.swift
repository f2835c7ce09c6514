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
/// Whatever comes below the mark (PUBACKs, and anything else the broker sends meanwhile: a command, a PINGRESP)
/// waits ``patience`` at most, counted from the first wait with the mark raised, across wake-ups; then it is read,
/// and the next wait is for the first byte again. A broker with Nagle's algorithm on (mosquitto's default,
/// `set_tcp_nodelay false`) often keeps the mark from being reached: it sends its first PUBACK and holds the rest
/// until that one's TCP acknowledgement, which the kernel delays (40 ms or more) unless something reads it. Its
/// waits run out with that first PUBACK waiting, where a busy broker's mostly run out with nothing: ``strikes``
/// waits that run out with bytes waiting (a small command's too), within ``pause``, turn the coalescing off for
/// ``pause``. Such a broker costs three waits of 5 ms every 5 seconds, and the thread wakes as it did before. With
/// TLS the mark counts the records' bytes, so it is reached sooner (after a few PUBACKs) and coalesces less. Nothing
/// else changes: the socket is readable at once when the broker closes it or fails, a wake-up (a publish queued)
/// ends a wait as always, and a read takes whatever has arrived.
struct PubackCoalescing {
    /// A PUBACK without properties (MQTT 5 and 3.1.1 alike).
    static let pubackBytes = 4
    /// The most PUBACKs a wait holds out for: a broker with a large Receive Maximum would otherwise keep a device's
    /// ack waiting for hundreds of others.
    static let mostAcks = 32
    /// How long what came below the mark waits at most: long enough for a busy box's broker to answer half its
    /// window (2 ms ran out 6 to 11 times per 100,000 messages in `bench.py`'s flow with its subscriber; 5, once at most).
    static let patience: Duration = .milliseconds(5)
    /// How many waits that run out with bytes waiting, within ``pause``, turn the coalescing off, and for how long.
    static let strikes = 3
    static let pause: Duration = .seconds(5)

    private var mark: Int32 = 1
    /// When what came below the raised mark must be read; kept across wake-ups.
    private var deadline: ContinuousClock.Instant?
    /// A wait ran out: the next one is for what has come.
    private var lowerOnce = false
    /// Waits that ran out with bytes waiting since `strikesSince`.
    private var strikeCount = 0
    private var strikesSince: ContinuousClock.Instant?
    private var pausedUntil: ContinuousClock.Instant?

    /// Whether the coalescing is off after waits that ran out (until the first ``prepare`` after the pause).
    var isPaused: Bool { pausedUntil != nil }

    /// Sets `socket`'s low-water mark for the PUBACKs the broker owes (`expectedAcks`; 0 while output waits for the
    /// socket, which the wait is then for). Returns how long the wait may last with the mark raised, in
    /// milliseconds (0 once ``patience`` is up), or nil without a raised mark: then the caller waits as it would.
    mutating func prepare(_ socket: Int32, expectedAcks: Int, now: @autoclosure () -> ContinuousClock.Instant) -> Int32? {
        if let until = pausedUntil, now() >= until { pausedUntil = nil }
        let acks = pausedUntil == nil && !lowerOnce ? min(expectedAcks / 2, Self.mostAcks) : 0
        lowerOnce = false
        let wanted = acks > 1 ? Int32(acks * Self.pubackBytes) : 1
        if wanted != mark {
            var value = wanted
            // A mark the socket refuses leaves the thread waking as it did before: no harm.
            if setsockopt(socket, SOL_SOCKET, SO_RCVLOWAT, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 { mark = wanted }
        }
        guard mark > 1 else {
            deadline = nil
            return nil
        }
        let now = now()
        let end = deadline ?? now + Self.patience
        deadline = end
        let (seconds, attoseconds) = max(end - now, .zero).components
        return Int32(seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    /// A wait that ``prepare`` bounded ended: `readable`, the socket was ready (what came below the mark is read
    /// with the rest); `ranOut`, neither it nor a wake-up was, and ``patience`` is up. Returns whether the pass should
    /// read the socket all the same: bytes are waiting below the mark. The next wait is then for the first byte, and
    /// ``strikes`` such waits within ``pause`` turn the coalescing off for ``pause``.
    mutating func waitEnded(_ socket: Int32, readable: Bool, ranOut: Bool, now: @autoclosure () -> ContinuousClock.Instant) -> Bool {
        if readable { deadline = nil }
        guard ranOut, mark > 1 else { return false }
        deadline = nil
        lowerOnce = true
        var byte: UInt8 = 0
        guard recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 1 else { return false }
        let now = now()
        if let since = strikesSince, now - since < Self.pause {
            strikeCount += 1
        } else {
            (strikesSince, strikeCount) = (now, 1)
        }
        if strikeCount >= Self.strikes {
            pausedUntil = now + Self.pause
            strikesSince = nil
        }
        return true
    }

    /// The connection ended: its successor's socket starts with the kernel's mark (1 byte).
    mutating func reset() {
        self = PubackCoalescing()
    }
}
