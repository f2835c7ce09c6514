import Dispatch
import Synchronization

/// The broker-side work that may take a while, one job at a time on a queue of its own rather than on the MQTT
/// network thread (which reads and writes nothing meanwhile): operators' bridge requests (a `reload` reads files, a
/// `devices` listing covers every device), Home Assistant's rediscovery, the sweep of queued commands when another
/// gateway goes offline.
///
/// Each job comes from one small message that anyone allowed on the broker can send again and again, and may
/// publish thousands (a rediscovery announces every held device). So the queue is bounded: at most ``maxWaiting``
/// jobs wait, and work that depends only on when it runs (``Coalesced``) waits once, whatever asked for it meanwhile,
/// and starts no sooner than its spacing after the last time it started.
final class SlowRequests: Sendable {
    /// Work that does the same whoever asks for it, and however often.
    enum Coalesced: Hashable, Sendable {
        /// Home Assistant came online: every held device is announced again.
        case rediscovery
        /// Another gateway went offline: its queued commands may be this gateway's to expire.
        case pendingSweep
    }

    /// Bridge requests waiting beyond this many are refused (the requester is told to retry).
    static let maxWaiting = 16

    private struct State {
        var waiting = 0
        var coalescedWaiting: Set<Coalesced> = []
        var lastStart: [Coalesced: ContinuousClock.Instant] = [:]
    }

    private let queue = DispatchQueue(label: "gatehouse.broker-router.slow")
    private let state = Mutex(State())

    /// Queues `job` behind the others; false, and `job` is dropped, when ``maxWaiting`` jobs wait already.
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let taken = state.withLock { state in
            guard state.waiting < Self.maxWaiting else { return false }
            state.waiting += 1
            return true
        }
        guard taken else { return false }
        queue.async { [self] in
            state.withLock { $0.waiting -= 1 }
            job()
        }
        return true
    }

    /// Queues `job` unless a job of `kind` waits already (that one does the same work), to start no sooner than
    /// `spacing` after the last job of `kind` started.
    func submit(_ kind: Coalesced, spacing: Duration = .zero, _ job: @escaping @Sendable () -> Void) {
        let delay: Duration? = state.withLock { state in
            guard state.coalescedWaiting.insert(kind).inserted else { return nil }
            guard let last = state.lastStart[kind] else { return .zero }
            return max(.zero, last + spacing - .now)
        }
        guard let delay else { return }
        let run: @Sendable () -> Void = { [self] in
            state.withLock { state in
                state.coalescedWaiting.remove(kind)
                state.lastStart[kind] = .now
            }
            job()
        }
        if delay == .zero { return queue.async(execute: run) }
        let (seconds, attoseconds) = delay.components
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)), execute: run)
    }

    /// Runs `body` on the queue after the jobs queued before it, and returns its result (tests).
    func sync<Result>(_ body: () -> Result) -> Result {
        queue.sync(execute: body)
    }
}
