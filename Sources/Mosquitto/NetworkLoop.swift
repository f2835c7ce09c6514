import CMosquitto
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libmosquitto's network loop on a thread of the client's own, in place of `mosquitto_loop_start`.
///
/// It does what libmosquitto 2.0.11's `mosquitto_loop_forever` does (repeat `mosquitto_loop`, reconnect with
/// backoff after a lost connection, return after an error libmosquitto considers fatal, and after the client's
/// own DISCONNECT), with two differences:
/// - Every pass runs with `TCP_CORK` set on the broker's socket. libmosquitto writes each packet with its own
///   `write()`; with `TCP_NODELAY` each of those went to the broker as its own segment, and on loopback the
///   writer pays for the receiver's side too. Corked, the packets one pass sends (every publish the PUBACKs
///   read in that pass released) leave as one segment when the pass uncorks. That cut the gateway's CPU per
///   QoS 1 message by about a sixth (docs/benchmarks.md, "Optimisations"). Nothing waits: the pass uncorks
///   as soon as it has written.
/// - The wait between reconnect attempts follows ``MQTTReconnectPolicy/delay(attempt:)`` (jitter included)
///   and ends at once when the client stops.
///
/// Publishing threads never write to the socket (`mosquitto_threaded_set`): libmosquitto queues their packets
/// and wakes this thread, as with its own thread.
final class NetworkLoop: @unchecked Sendable {
    // @unchecked: `handle` and `thread` are `let`s; libmosquitto guards its state with its own mutexes in
    // threaded mode, and everything else here is atomic or behind a Mutex.
    private let handle: OpaquePointer
    private let core: ClientCore
    private var thread = pthread_t()
    /// Set by `finish`: the loop ends once libmosquitto has no socket (the DISCONNECT was written, or there was no
    /// connection), as `loop_forever` ends in libmosquitto's "disconnecting" state.
    private let stopping = Atomic<Bool>(false)
    /// Held around each `mosquitto_reconnect` and around the client's disconnect in `finish`, so that no
    /// reconnect starts after the client asked to stop.
    private let reconnecting = Mutex(())
    /// Signalled by `finish` to cut the wait between reconnect attempts short.
    private let wake = DispatchSemaphore(value: 0)

    /// Starts the thread. The handle must have a socket or a connection attempt under way (`connect_*_async`).
    init(handle: OpaquePointer, core: ClientCore) throws(MosquittoError) {
        self.handle = handle
        self.core = core
        mosquitto_threaded_set(handle, true)
        let retained = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            let loop = Unmanaged<NetworkLoop>.fromOpaque(argument!).takeRetainedValue()
            loop.run()
            return nil
        }, retained)
        guard rc == 0 else {
            Unmanaged<NetworkLoop>.fromOpaque(retained).release()
            throw MosquittoError(code: .other, message: "cannot start the MQTT network thread: \(String(cString: strerror(rc)))")
        }
    }

    /// Stops the loop and joins the thread. `disconnect` (the client's `mosquitto_disconnect_v5`) runs first,
    /// where no reconnect can be under way; the loop then writes the DISCONNECT and returns. After a fatal
    /// error the thread has returned by itself and `disconnect` may do nothing.
    func finish(after disconnect: () -> Void) {
        reconnecting.withLock { _ in
            stopping.store(true, ordering: .sequentiallyConsistent)
            disconnect()
        }
        wake.signal()
        pthread_join(thread, nil)
    }

    private func run() {
        #if os(Linux)
        _ = pthread_setname_np(pthread_self(), "mqtt network")
        #endif
        let policy = core.options.reconnect
        var attempt = 0
        while true {
            let acceptedBefore = core.acceptedConnections.load(ordering: .relaxed)
            var (rc, error): (MosquittoResultCode, Int32)
            repeat { (rc, error) = pass() } while rc == .success
            // Quit after fatal errors, as loop_forever does; the disconnect callback has told the client.
            if rc.endsNetworkThread || error == EPROTO { return }
            if core.acceptedConnections.load(ordering: .relaxed) != acceptedBefore { attempt = 0 }
            while true {
                if stopping.load(ordering: .sequentiallyConsistent) { return }
                let (seconds, attoseconds) = policy.delay(attempt: attempt).components
                _ = wake.wait(timeout: .now() + Double(seconds) + Double(attoseconds) * 1e-18)
                attempt += 1
                let reconnected: Bool? = reconnecting.withLock { _ in
                    stopping.load(ordering: .sequentiallyConsistent)
                        ? nil : MosquittoResultCode(mosquitto_reconnect(handle)) == .success
                }
                guard let reconnected else { return }
                if reconnected { break }
            }
        }
    }

    /// One `mosquitto_loop` pass (wait up to a second, read, write, keepalive), its writes corked; returns its
    /// result and `errno` as it left it.
    private func pass() -> (MosquittoResultCode, Int32) {
        let socket = mosquitto_socket(handle)
        if socket >= 0 { setCork(socket, true) }
        let rc = MosquittoResultCode(mosquitto_loop(handle, 1000, 1))
        let error = errno
        // Only the socket corked above: if the pass closed it, the number may already belong to another file.
        if socket >= 0, mosquitto_socket(handle) == socket { setCork(socket, false) }
        return (rc, error)
    }

    private func setCork(_ socket: Int32, _ on: Bool) {
        #if os(Linux)
        var value: Int32 = on ? 1 : 0
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }
}
