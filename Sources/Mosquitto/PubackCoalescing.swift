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
/// waits the current ``patience`` at most, counted from the first wait with the mark raised, across wake-ups; then
/// it is read, and the next wait is for the first byte again. That bound is also what paces a broker with Nagle's
/// algorithm on (mosquitto's default, `set_tcp_nodelay false`): it sends its first PUBACK and holds the rest until
/// that one's TCP acknowledgement, which the kernel delays (40 ms or more) until this thread reads or writes. So
/// such a broker's waits run out, each with one PUBACK waiting; reading it and writing the publishes it released
/// acknowledges it, the broker sends all it held in one segment, and the wait for the first byte takes that at once.
/// Without the mark, thread and broker answered each other one PUBACK at a time.
///
/// The patience adapts to the broker, between ``shortestPatience`` and ``longestPatience``: after a wait that ran
/// out, if the PUBACKs read by the end of the pass that fetched what the broker held back answer all it owed when
/// the wait began, the broker had been waiting for this thread, and the patience shrinks; otherwise it grows. A
/// fixed 0.5 ms halved the CPU per message of a Nagle broker busy with a subscriber but held a fast one to a third
/// of its rate.
///
/// With TLS the mark counts the records' bytes, so it is reached sooner (after a few PUBACKs) and coalesces less.
/// Nothing else changes: the socket is readable at once when the broker closes it or fails, a wake-up (a publish
/// to send) ends a wait as always, and a read takes whatever has arrived.
struct PubackCoalescing {
    /// The shortest PUBACK (MQTT 3.1.1's, and MQTT 5's without a reason code). mosquitto adds one when no client
    /// subscribes to the topic (5 bytes): the mark is then reached after four fifths of the PUBACKs it counts.
    static let pubackBytes = 4
    /// The most PUBACKs a wait holds out for: a broker with a large Receive Maximum would otherwise keep a device's
    /// ack waiting for hundreds of others.
    static let mostAcks = 32
    /// The bounds of how long what came below the mark waits. The longest bounds what the mark adds to a command's
    /// or an ack's way; 5 ms left a Nagle broker's batches waiting so long that the coalescing had to be turned off
    /// for it.
    static let shortestPatience: Duration = .microseconds(50)
    static let longestPatience: Duration = .milliseconds(1)
    static let initialPatience: Duration = .microseconds(250)

    /// What the broker owed when a wait with the raised mark began, and how many PUBACKs had come by then.
    private struct Round {
        var owed: Int
        var answered: Int
    }

    private enum Phase {
        case idle
        /// A wait with the mark raised, until `deadline` across wake-ups.
        case holding(deadline: ContinuousClock.Instant, Round)
        /// That wait ran out: the next ones are for the first byte (what the broker held back), across wake-ups,
        /// until the socket is readable.
        case fetching(Round)
        /// It was: the next ``prepare`` judges the patience by the PUBACKs read in that pass.
        case fetched(Round)
    }

    private var mark: Int32 = 1
    private var phase = Phase.idle
    private(set) var patience = Self.initialPatience

    /// Sets `socket`'s low-water mark for the PUBACKs the broker owes (`owed`; 0 while output waits for the socket,
    /// which the wait is then for); `answered` counts the PUBACKs that have come on this connection. Returns how long
    /// the wait may last with the mark raised (zero once the patience is up), or nil without a raised mark: then the
    /// caller waits as it would.
    mutating func prepare(_ socket: Int32, owed: Int, answered: Int, now: @autoclosure () -> ContinuousClock.Instant) -> Duration? {
        var deadline: ContinuousClock.Instant?
        var round = Round(owed: owed, answered: answered)
        switch phase {
        case .fetching(let earlier):
            return fetch(socket, earlier)
        case .holding(let end, let earlier) where now() >= end:
            // Wake-ups ended every wait since the patience ran out: what came below the mark is read now.
            return fetch(socket, earlier)
        case .holding(let end, let earlier):
            (deadline, round) = (end, earlier)
        case .fetched(let earlier):
            adapt(fetchedAll: answered - earlier.answered >= earlier.owed)
        case .idle:
            break
        }
        let acks = min(owed / 2, Self.mostAcks)
        setMark(socket, acks > 1 ? Int32(acks * Self.pubackBytes) : 1)
        guard mark > 1 else {
            phase = .idle
            return nil
        }
        let now = now()
        let end = deadline ?? now + patience
        phase = .holding(deadline: end, round)
        return max(end - now, .zero)
    }

    /// The wait after ``prepare`` ended: `readable`, the socket was ready (what came below the mark is read with
    /// the rest); `ranOut`, neither it nor a wake-up was, and the patience is up. Returns whether the pass should
    /// read the socket all the same: bytes are waiting below the mark. The next wait is then for the first byte.
    mutating func waitEnded(_ socket: Int32, readable: Bool, ranOut: Bool) -> Bool {
        switch phase {
        case .holding(_, let round) where ranOut:
            phase = .fetching(round)
            var byte: UInt8 = 0
            return recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 1
        case .holding where readable:
            phase = .idle
        case .fetching(let round) where readable:
            phase = .fetched(round)
        default:
            break
        }
        return false
    }

    /// The connection ended: its successor's socket starts with the kernel's mark (1 byte). The patience is kept:
    /// it is the broker's.
    mutating func reset() {
        let patience = self.patience
        self = PubackCoalescing()
        self.patience = patience
    }

    /// The wait for the first byte after a run-out, until the socket is readable: what the broker held back.
    private mutating func fetch(_ socket: Int32, _ round: Round) -> Duration? {
        setMark(socket, 1)
        phase = .fetching(round)
        // A mark that did not come down (the socket is failing) must not keep bytes waiting for the idle wait.
        return mark == 1 ? nil : Self.shortestPatience
    }

    private mutating func setMark(_ socket: Int32, _ wanted: Int32) {
        guard wanted != mark else { return }
        var value = wanted
        // A raised mark the socket refuses leaves the thread waking as it did before: no harm.
        if setsockopt(socket, SOL_SOCKET, SO_RCVLOWAT, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 { mark = wanted }
    }

    /// After a wait that ran out: all the broker owed was answered by the end of the next wait, so it had been
    /// waiting for this thread (shorter), or not (longer).
    private mutating func adapt(fetchedAll: Bool) {
        patience = fetchedAll ? max(patience * 0.75, Self.shortestPatience) : min(patience * 1.25, Self.longestPatience)
    }
}
