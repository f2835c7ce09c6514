#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Work that code on the MQTT network thread (a callback: a PUBACK's completion, an incoming message) hands to
/// another thread, held until the end of the network thread's pass, after its writes: a thread woken mid-pass
/// preempts the network thread on a busy box, and the publishes that the pass's PUBACKs released wait for it.
/// `LoopFrames` wakes its event loop this way. On any other thread the work runs at once.
public enum AfterPass {
    private final class Actions {
        var list: [() -> Void] = []
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key, nil)
        precondition(rc == 0, "cannot create the network thread's key: \(rc)")
        return key
    }()

    /// Whether this is a network thread, where ``run(_:)`` waits for the end of the pass.
    public static var isNetworkThread: Bool { pthread_getspecific(key) != nil }

    /// Runs `action` at the end of the current pass if this is the network thread (where it must not block; what
    /// is left when the thread ends runs then), or now on any other thread.
    public static func run(_ action: @escaping () -> Void) {
        guard let actions = pthread_getspecific(key) else { return action() }
        Unmanaged<Actions>.fromOpaque(actions).takeUnretainedValue().list.append(action)
    }

    /// Makes the calling thread a network thread until `body` returns; `body` gets the function that ends a pass.
    static func asNetworkThread(_ body: (_ endPass: () -> Void) throws -> Void) rethrows {
        precondition(!isNetworkThread, "already a network thread")
        let actions = Actions()
        pthread_setspecific(key, Unmanaged.passUnretained(actions).toOpaque())
        defer {
            pthread_setspecific(key, nil)
            for action in actions.list { action() }
        }
        try body {
            // What an action hands in runs in the same pass (the count is read again each time round).
            var next = 0
            while next < actions.list.count {
                actions.list[next]()
                next += 1
            }
            actions.list.removeAll(keepingCapacity: true)
        }
    }
}
