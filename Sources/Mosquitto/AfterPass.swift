#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Work that a callback on the MQTT network thread hands to another thread (waking it), held until the end of the
/// network thread's pass, after its writes: a thread woken mid-pass preempts the network thread on a busy box, and
/// the publishes that the pass's PUBACKs released wait for it. On any other thread the work runs at once.
public enum AfterPass {
    private final class Actions {
        var list: [() -> Void] = []
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Runs `action` at the end of the current pass on the network thread, or now on any other thread.
    public static func run(_ action: @escaping () -> Void) {
        guard let actions = pthread_getspecific(key) else { return action() }
        Unmanaged<Actions>.fromOpaque(actions).takeUnretainedValue().list.append(action)
    }

    /// Makes the calling thread a network thread until `body` returns; `body` gets the function that ends a pass.
    static func collecting(_ body: (_ endPass: () -> Void) -> Void) {
        let actions = Actions()
        pthread_setspecific(key, Unmanaged.passUnretained(actions).toOpaque())
        defer {
            pthread_setspecific(key, nil)
            for action in actions.list { action() }
        }
        body {
            while !actions.list.isEmpty {
                let due = actions.list
                actions.list = []
                for action in due { action() }
            }
        }
    }
}
