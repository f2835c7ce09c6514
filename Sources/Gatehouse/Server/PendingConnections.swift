import Glibc
import NIOCore
import Synchronization

/// Connections that are not (yet) a device: TLS and HTTP handshakes in progress, refused upgrades being
/// answered, plain HTTP clients (status page, metrics). At most `limits.max_pending_connections` are kept: a new
/// one beyond that closes the oldest. So clients that never finish their handshake can neither use up the
/// process's file descriptors (devices and the broker link need them) nor keep a real device out: a device
/// finishes its handshake in milliseconds, long before it becomes the oldest. `limits.handshake_timeout_s`
/// ends each of them anyway: one timer sweeps them (``sweepHandshakes(every:on:)``), oldest first.
///
/// Why not a timer per connection, as before: every connection scheduled one and then cancelled it, and NIO cancels
/// a scheduled task by searching the loop's whole queue of them (in a connect storm, every other connection's
/// timeout; docs/benchmarks.md).
final class PendingConnections: Sendable {
    private let state = Mutex(State())
    private let settings: SettingsStore
    private let metrics: GatewayMetrics

    private struct State {
        var open = OldestFirst<any Channel>()
        /// The connections still on their first request, with when they began (so the oldest comes first).
        var handshakes = OldestFirst<(channel: any Channel, began: NIODeadline)>()
        /// Handshakes over the timeout whose close waits for their event loop (by handshake ticket).
        var expiring: Set<UInt64> = []
    }

    /// A connection's place in both lists.
    struct Ticket: Sendable {
        fileprivate let open: UInt64
        fileprivate let handshake: UInt64
    }

    init(settings: SettingsStore, metrics: GatewayMetrics) {
        self.settings = settings
        self.metrics = metrics
    }

    /// Counts `channel` as pending until `finished(_:)` or its close, and as handshaking until
    /// `handshakeEnded(_:)`; closes the oldest pending connections beyond the cap.
    func add(_ channel: any Channel, now: NIODeadline = .now()) -> Ticket {
        let limit = settings.now.limits.maxPendingConnections
        let (ticket, evicted) = state.withLock { state in
            var evicted: [any Channel] = []
            while state.open.count >= limit, let oldest = state.open.removeOldest() { evicted.append(oldest) }
            return (Ticket(open: state.open.add(channel), handshake: state.handshakes.add((channel, now))), evicted)
        }
        for old in evicted {
            metrics.limitHit("pending_connections")
            old.close(promise: nil)
        }
        channel.closeFuture.whenComplete { [self] _ in finished(ticket) }
        return ticket
    }

    /// The connection's first request was answered (upgraded, or handed to HTTP): the handshake timeout is over.
    func handshakeEnded(_ ticket: Ticket) {
        state.withLock { state in
            _ = state.handshakes.remove(ticket.handshake)
            state.expiring.remove(ticket.handshake)
        }
    }

    /// The connection became a device (or closed): it no longer counts.
    func finished(_ ticket: Ticket) {
        state.withLock { state in
            _ = state.open.remove(ticket.open)
            _ = state.handshakes.remove(ticket.handshake)
            state.expiring.remove(ticket.handshake)
        }
    }

    /// Closes the connections that began `limits.handshake_timeout_s` or longer before `now` and are still on their
    /// first request (slowloris). Each is closed on its own event loop, where its handshake ends: one that ended
    /// before that (its device just upgraded) stays open.
    func closeTimedOutHandshakes(now: NIODeadline = .now()) {
        let timeout = TimeAmount.seconds(Int64(settings.now.limits.handshakeTimeoutSeconds))
        let timedOut = state.withLock { state in
            var timedOut: [(ticket: UInt64, channel: any Channel)] = []
            while let (ticket, oldest) = state.handshakes.removeOldest(if: { now - $0.began >= timeout }) {
                state.expiring.insert(ticket)
                timedOut.append((ticket, oldest.channel))
            }
            return timedOut
        }
        for (ticket, channel) in timedOut {
            channel.eventLoop.execute { [self] in
                guard state.withLock({ $0.expiring.remove(ticket) != nil }) else { return }
                metrics.limitHit("handshake_timeout")
                channel.close(promise: nil)
            }
        }
    }

    /// Runs ``closeTimedOutHandshakes(now:)`` every `interval` on `loop`, for as long as this object exists.
    func sweepHandshakes(every interval: TimeAmount, on loop: any EventLoop) {
        loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] task in
            guard let self else { return task.cancel() }
            closeTimedOutHandshakes()
        }
    }

    /// Connections counted now.
    var count: Int { state.withLock { $0.open.count } }

    /// A warning when devices plus pending connections (plus a reserve for the broker link, the spool and the
    /// listener) could exceed the process's open-file limit; nil when they fit.
    static func fileLimitWarning(_ limits: LimitsSection) -> String? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        let needed = limits.maxConnections + limits.maxPendingConnections + 100
        guard UInt64(needed) > UInt64(limit.rlim_cur) else { return nil }
        return "limits.max_connections (\(limits.maxConnections)) + limits.max_pending_connections (\(limits.maxPendingConnections)) + 100 "
            + "exceed the open-file limit of \(limit.rlim_cur): lower them or raise LimitNOFILE, or the broker link may find no file descriptor"
    }
}

/// Entries in the order they were added, the oldest taken first; removal by ticket. Tickets only grow, so the
/// oldest is found by moving a cursor forward over removed tickets (amortised O(1)).
struct OldestFirst<Value> {
    private var entries: [UInt64: Value] = [:]
    private var next: UInt64 = 0
    private var oldest: UInt64 = 0

    var count: Int { entries.count }

    /// Adds `value`; returns its ticket.
    mutating func add(_ value: Value) -> UInt64 {
        defer { next += 1 }
        entries[next] = value
        return next
    }

    mutating func remove(_ ticket: UInt64) -> Value? {
        entries.removeValue(forKey: ticket)
    }

    mutating func removeOldest() -> Value? {
        removeOldest(if: { _ in true })?.value
    }

    /// Removes the oldest entry if `isDue` says so; returns it with its ticket.
    mutating func removeOldest(if isDue: (Value) -> Bool) -> (ticket: UInt64, value: Value)? {
        guard !entries.isEmpty else { return nil }
        while entries[oldest] == nil { oldest += 1 }
        guard let value = entries[oldest], isDue(value) else { return nil }
        entries[oldest] = nil
        return (oldest, value)
    }
}
