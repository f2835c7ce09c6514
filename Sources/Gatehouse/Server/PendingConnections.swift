import Glibc
import NIOCore
import Synchronization

/// Connections that are not (yet) a device: TLS and HTTP handshakes in progress, refused upgrades being
/// answered, plain HTTP clients (status page, metrics). At most `limits.max_pending_connections` are kept: a new
/// one beyond that closes the oldest. So clients that never finish their handshake can neither use up the
/// process's file descriptors (devices and the broker link need them) nor keep a real device out: a device
/// finishes its handshake in milliseconds, long before it becomes the oldest. `limits.handshake_timeout_s`
/// ends each of them anyway.
final class PendingConnections: Sendable {
    private let open = Mutex(OldestFirst<any Channel>())
    private let settings: SettingsStore
    private let metrics: GatewayMetrics

    init(settings: SettingsStore, metrics: GatewayMetrics) {
        self.settings = settings
        self.metrics = metrics
    }

    /// Counts `channel` as pending until `finished(_:)` or its close; closes the oldest pending connections
    /// beyond the cap. Returns the ticket for `finished(_:)`.
    func add(_ channel: any Channel) -> UInt64 {
        let limit = settings.now.limits.maxPendingConnections
        let (ticket, evicted) = open.withLock { open in
            var evicted: [any Channel] = []
            while open.count >= limit, let oldest = open.removeOldest() { evicted.append(oldest) }
            return (open.add(channel), evicted)
        }
        for old in evicted {
            metrics.limitHit("pending_connections")
            old.close(promise: nil)
        }
        channel.closeFuture.whenComplete { [self] _ in finished(ticket) }
        return ticket
    }

    /// The connection became a device (or closed): it no longer counts.
    func finished(_ ticket: UInt64) {
        _ = open.withLock { $0.remove(ticket) }
    }

    /// Connections counted now.
    var count: Int { open.withLock { $0.count } }

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
        guard !entries.isEmpty else { return nil }
        while entries[oldest] == nil { oldest += 1 }
        return entries.removeValue(forKey: oldest)
    }
}
