#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Publishes that one thread makes in a burst (a device's messages of one socket read) wake the MQTT network thread
/// once, when the burst ends, instead of at the first publish that finds it asleep: woken at once, the network
/// thread wrote that one message and slept again, and the next publish woke it anew (with QoS 0 telemetry, a
/// network pass, a pipe write and two context switches for every other message; docs/benchmarks.md,
/// "Optimisations"). The held wake-up waits only for the rest of the burst, which runs on this thread.
public enum PublishBatch {
    private final class Wakers {
        var list: [LoopWaker] = []
        var depth = 0
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { $0.map { Unmanaged<AnyObject>.fromOpaque($0).release() } }
        precondition(rc == 0, "cannot create the publish batch's key: \(rc)")
        return key
    }()

    /// Runs `body`; the network threads its publishes would wake are woken once, when it returns (the outermost
    /// call, if nested).
    public static func run<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        let wakers = threadWakers
        wakers.depth += 1
        defer {
            wakers.depth -= 1
            if wakers.depth == 0, !wakers.list.isEmpty {
                for waker in wakers.list { waker.wakeNow() }
                wakers.list.removeAll(keepingCapacity: true)
            }
        }
        return try body()
    }

    /// Holds `waker`'s wake-up until the end of this thread's batch; false outside a batch.
    static func hold(_ waker: LoopWaker) -> Bool {
        guard let pointer = pthread_getspecific(key) else { return false }
        let wakers = Unmanaged<Wakers>.fromOpaque(pointer).takeUnretainedValue()
        guard wakers.depth > 0 else { return false }
        if !wakers.list.contains(where: { $0 === waker }) { wakers.list.append(waker) }
        return true
    }

    private static var threadWakers: Wakers {
        if let pointer = pthread_getspecific(key) { return Unmanaged<Wakers>.fromOpaque(pointer).takeUnretainedValue() }
        let wakers = Wakers()
        pthread_setspecific(key, Unmanaged.passRetained(wakers).toOpaque())
        return wakers
    }
}
