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
/// and the next wait is for the first byte again. That bound is also what paces a broker with Nagle's algorithm on
/// (mosquitto's default, `set_tcp_nodelay false`): it sends its first PUBACK and holds the rest until that one's
/// TCP acknowledgement, which the kernel delays (40 ms or more) until this thread reads it or writes. So such a
/// broker's waits run out, each with one PUBACK waiting; reading it and writing the publishes it released
/// acknowledges it, and the broker sends all it held in one segment, which the next wait (for the first byte)
/// takes at once: two wake-ups per ``patience`` where without the mark the thread and the broker answered each
/// other one PUBACK at a time. With TLS the mark counts the records' bytes, so it is reached sooner (after a few
/// PUBACKs) and coalesces less. Nothing else changes: the socket is readable at once when the broker closes it or
/// fails, a wake-up (a publish queued) ends a wait as always, and a read takes whatever has arrived.
struct PubackCoalescing {
    /// A PUBACK without properties (MQTT 5 and 3.1.1 alike).
    static let pubackBytes = 4
    /// How long what came below the mark waits at most. It bounds what the mark adds to a command's or an ack's
    /// way, and paces a broker with Nagle's algorithm on. 0.25 to 2 ms all cost about the same per message
    /// (`bench_profile.py` with its subscriber, either broker; docs/benchmarks.md); 5 ms left a Nagle broker's
    /// batches waiting long enough that the coalescing had to be turned off for it.
    static let patience: Duration = .microseconds(500)
    /// The most PUBACKs a wait holds out for: a broker with a large Receive Maximum would otherwise keep a device's
    /// ack waiting for hundreds of others.
    static let mostAcks = 32

    private var mark: Int32 = 1
    /// When what came below the raised mark must be read; kept across wake-ups.
    private var deadline: ContinuousClock.Instant?
    /// A wait ran out: the next one is for what has come.
    private var lowerOnce = false

    /// Sets `socket`'s low-water mark for the PUBACKs the broker owes (`expectedAcks`; 0 while output waits for the
    /// socket, which the wait is then for). Returns how long the wait may last with the mark raised (zero once
    /// ``patience`` is up), or nil without a raised mark: then the caller waits as it would.
    mutating func prepare(_ socket: Int32, expectedAcks: Int, now: @autoclosure () -> ContinuousClock.Instant) -> Duration? {
        let acks = lowerOnce ? 0 : min(expectedAcks / 2, Self.mostAcks)
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
        return max(end - now, .zero)
    }

    /// A wait that ``prepare`` bounded ended: `readable`, the socket was ready (what came below the mark is read
    /// with the rest); `ranOut`, neither it nor a wake-up was, and ``patience`` is up. Returns whether the pass should
    /// read the socket all the same: bytes are waiting below the mark. The next wait is then for the first byte.
    mutating func waitEnded(_ socket: Int32, readable: Bool, ranOut: Bool) -> Bool {
        if readable { deadline = nil }
        guard ranOut, mark > 1 else { return false }
        deadline = nil
        lowerOnce = true
        var byte: UInt8 = 0
        return recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 1
    }

    /// The connection ended: its successor's socket starts with the kernel's mark (1 byte).
    mutating func reset() {
        self = PubackCoalescing()
    }
}
