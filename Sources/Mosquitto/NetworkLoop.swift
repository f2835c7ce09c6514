import CMosquitto
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libmosquitto's network loop on a thread of the client's own, in place of `mosquitto_loop_start`.
///
/// It does what libmosquitto 2.0.11's `mosquitto_loop_forever` does (wait for the socket, read, write, keep the
/// connection alive; reconnect with backoff after a lost connection; return after an error libmosquitto considers
/// fatal, and after the client's own DISCONNECT). Until the broker's CONNACK a pass is libmosquitto's own
/// (`mosquitto_loop`, which completes a non-blocking connect and drives the TLS handshake); from then on it is built
/// from libmosquitto's pieces (`mosquitto_loop_read`, `_write`, `_misc`) around a `poll` of ours, for three reasons,
/// each measured (docs/benchmarks.md, "Optimisations"):
/// - libmosquitto wakes its thread through a socket pair: one byte per queued packet, and `mosquitto_loop` reads
///   one byte per pass, so N packets queued meant N passes of the whole loop (select, read, write, keepalive)
///   after the pass that had already written them all. This loop is woken through ``LoopWaker`` instead, only
///   when it sleeps, and never reads the socket pair (once full, libmosquitto's writes to it fail at once).
/// - A pass writes with `TCP_CORK` set on the broker's socket when it has more than one packet to write (for one,
///   the two system calls would buy nothing). libmosquitto writes each packet with its own `write()`; with
///   `TCP_NODELAY` each of those went to the broker as its own segment, and on loopback the writer pays for the
///   receiver's side too. Corked, the packets one pass sends (every publish the PUBACKs read in that pass
///   released) leave as one segment when the pass uncorks, at its end: nothing waits.
/// - Work that the callbacks hand to ``AfterPass`` (the device loops' wake-ups for their acks) runs at the end of the
///   pass, after its writes: a thread woken mid-pass preempted this one on a busy box, and the pass's publishes waited.
/// - The wait between reconnect attempts follows ``MQTTReconnectPolicy/delay(attempt:)`` (jitter included) and
///   ends at once when the client stops (and only then: publishing during an outage does not shorten it).
///
/// When it returns by itself (after a fatal error) it tells the client, whose retry task starts a new one.
///
/// Publishing threads never write to the socket (`mosquitto_threaded_set`): libmosquitto queues their packets, and
/// the client wakes this thread (``LoopWaker/wake()``).
final class NetworkLoop: @unchecked Sendable {
    // @unchecked: `thread` is written only in init, `handle` is a `let`; libmosquitto guards its state with its own
    // mutexes in threaded mode, and everything else here is atomic or behind a Mutex.
    private let handle: OpaquePointer
    private let core: ClientCore
    private let waker: LoopWaker
    private var thread = pthread_t()
    /// Set by `finish`: the loop ends once libmosquitto has no socket (the DISCONNECT was written, or there was no
    /// connection), as `loop_forever` ends in libmosquitto's "disconnecting" state.
    private let stopping = Atomic<Bool>(false)
    /// Held around each `mosquitto_reconnect_async` and around the client's disconnect in `finish`, so that no
    /// reconnect starts after the client asked to stop.
    private let reconnecting = Mutex(())

    /// Starts the thread. The handle must have a socket or a connection attempt under way (`connect_*_async`).
    init(handle: OpaquePointer, core: ClientCore, waker: LoopWaker) throws(MosquittoError) {
        self.handle = handle
        self.core = core
        self.waker = waker
        mosquitto_threaded_set(handle, true)
        let retained = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            let loop = Unmanaged<NetworkLoop>.fromOpaque(argument!).takeRetainedValue()
            AfterPass.asNetworkThread { endPass in loop.run(endPass: endPass) }
            return nil
        }, retained)
        guard rc == 0 else {
            Unmanaged<NetworkLoop>.fromOpaque(retained).release()
            throw MosquittoError(code: .other, message: "cannot start the MQTT network thread: \(String(cString: strerror(rc)))")
        }
    }

    /// Stops the loop and joins the thread. `disconnect` (the client's `mosquitto_disconnect_v5`) runs first,
    /// where no reconnect can be under way; the loop then writes the DISCONNECT and returns, or returns at once
    /// if the broker has not accepted the connection yet. After a fatal error the thread has returned by itself
    /// and `disconnect` may do nothing.
    func finish(after disconnect: () -> Void) {
        reconnecting.withLock { _ in
            stopping.store(true, ordering: .sequentiallyConsistent)
            disconnect()
        }
        waker.wake()
        pthread_join(thread, nil)
    }

    private func run(endPass: () -> Void) {
        #if os(Linux)
        _ = pthread_setname_np(pthread_self(), "mqtt network")
        #endif
        let policy = core.options.reconnect
        var attempt = 0
        while true {
            let acceptedBefore = core.acceptedConnections.load(ordering: .relaxed)
            var (rc, error): (MosquittoResultCode, Int32)
            repeat {
                (rc, error) = pass()
                endPass()
            } while rc == .success && !isStoppingBeforeAccepted
            // Asked to stop before the broker accepted this connection: nothing to say goodbye to (a connect to an
            // unreachable host could otherwise hold the stop for minutes of SYN retries).
            if isStoppingBeforeAccepted { return }
            // Quit after fatal errors, as loop_forever does, and have the client start over.
            if rc.endsNetworkThread || error == EPROTO {
                if !isStopping { core.networkLoopEnded() }
                return
            }
            if core.acceptedConnections.load(ordering: .relaxed) != acceptedBefore { attempt = 0 }
            while true {
                if isStopping { return }
                waker.sleep(until: .now + policy.delay(attempt: attempt)) { isStopping }
                attempt += 1
                // Non-blocking, as the first attempt: the passes complete the connect, and a stop does not wait for it.
                let reconnected: Bool? = reconnecting.withLock { _ in
                    isStopping ? nil : MosquittoResultCode(mosquitto_reconnect_async(handle)) == .success
                }
                guard let reconnected else { return }
                if reconnected { break }
            }
        }
    }

    private var isStopping: Bool { stopping.load(ordering: .sequentiallyConsistent) }

    /// Asked to stop while the broker has not accepted the current connection (or there is none).
    private var isStoppingBeforeAccepted: Bool { isStopping && !core.linkUp.load(ordering: .relaxed) }

    /// One pass, as `mosquitto_loop` makes it: wait up to a second for the socket (or a wake-up), read what
    /// arrived, write what is queued (corked, unless it is one packet), then
    /// keepalive. Returns the first failure and `errno` as it left it.
    private func pass() -> (MosquittoResultCode, Int32) {
        let socket = mosquitto_socket(handle)
        guard socket >= 0 else { return (.noConnection, 0) }
        // Before the CONNACK, libmosquitto's own pass: in 2.0.11 only `mosquitto_loop` completes a non-blocking
        // connect's TLS handshake (this loop's pass would see the socket writable and spin without sending it).
        guard core.linkUp.load(ordering: .relaxed) else { return connectingPass(socket) }
        let (ready, error) = waker.waitForSocket(socket) { Int16(POLLIN) | (mosquitto_want_write(handle) ? Int16(POLLOUT) : 0) }
        guard error == 0 else { return error == EINTR ? (.success, 0) : (.errno, error) }
        if ready & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            let rc = MosquittoResultCode(mosquitto_loop_read(handle, 1))
            if rc != .success || mosquitto_socket(handle) < 0 { return (rc, errno) }
        }
        // Also what the callbacks of the reads above queued (the next publishes, the PUBACKs of incoming QoS 1).
        if ready & Int16(POLLOUT) != 0 || mosquitto_want_write(handle) {
            // A lone packet leaves at once either way: corking it would only cost two system calls. Packets come
            // from publishers (counted by `wake()`) and from libmosquitto itself while it read (its answers to
            // incoming QoS 1 messages, and the publishes that PUBACKs release from its queue).
            let queued = waker.takeQueuedCount() + core.packetsQueuedByReads.exchange(0, ordering: .relaxed)
            let cork = queued > 1
            if cork { setCork(socket, true) }
            let rc = MosquittoResultCode(mosquitto_loop_write(handle, 1))
            let error = errno
            // Only the socket corked above: if the write closed it, the number may already belong to another file.
            if cork, mosquitto_socket(handle) == socket { setCork(socket, false) }
            if rc != .success || mosquitto_socket(handle) < 0 { return (rc, error) }
        }
        return (MosquittoResultCode(mosquitto_loop_misc(handle)), errno)
    }

    /// A pass before the CONNACK. With TLS, a connection that failed (refused, reset) is ended here: libmosquitto
    /// 2.0.11 takes the TLS library's error on such a socket for "handshake still under way" and would go round
    /// at full speed until the keepalive gave up. Ended as libmosquitto ends a failed attempt: the disconnect
    /// callback, then the wait and `mosquitto_reconnect_async`, which closes the socket.
    private func connectingPass(_ socket: Int32) -> (MosquittoResultCode, Int32) {
        if core.options.tls != nil {
            // POLLHUP: refused or reset (the TLS library has already taken the socket's error, so it says which no more).
            var probe = pollfd(fd: socket, events: 0, revents: 0)
            if poll(&probe, 1, 0) == 1, probe.revents & Int16(POLLHUP | POLLERR) != 0 {
                var failure: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(socket, SOL_SOCKET, SO_ERROR, &failure, &length)
                errno = failure != 0 ? failure : ECONNRESET
                let error = errno
                core.handleDisconnect(rc: MosquittoResultCode.errno.rawValue)
                return (.errno, error)
            }
        }
        return (MosquittoResultCode(mosquitto_loop(handle, 1000, 1)), errno)
    }

    private func setCork(_ socket: Int32, _ on: Bool) {
        #if os(Linux)
        var value: Int32 = on ? 1 : 0
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }
}

/// Wakes the network thread from its `poll`: a pipe it polls beside the broker's socket. Only a thread that finds
/// it asleep writes (one byte per sleep), so a publish from a device's event loop costs an atomic load while the
/// network thread is busy. One per client, shared by the network loops it starts.
final class LoopWaker: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32
    private let asleep = Atomic<Bool>(false)
    /// Wake-ups (packets queued) since the network thread last took the count.
    private let queued = Atomic<Int>(0)

    init() throws(MosquittoError) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw MosquittoError(code: .other, message: "cannot create the MQTT network thread's wake-up pipe: \(MosquittoError.describe(.errno))")
        }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        (readEnd, writeEnd) = (ends[0], ends[1])
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Wakes the network thread if it waits; called after queueing a packet (from any thread), and counts it.
    func wake() {
        queued.wrappingAdd(1, ordering: .relaxed)
        // The fences pair up: either this thread sees the flag, or the network thread sees the queued packet.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard asleep.load(ordering: .sequentiallyConsistent), asleep.exchange(false, ordering: .sequentiallyConsistent) else { return }
        var byte: UInt8 = 0
        _ = write(writeEnd, &byte, 1)
    }

    /// The packets queued through ``wake()`` since the last call.
    func takeQueuedCount() -> Int {
        queued.exchange(0, ordering: .relaxed)
    }

    /// Waits up to a second until `socket` is ready for what `events` asks (evaluated once the thread counts as
    /// asleep, so that a packet queued meanwhile either shows in it or wakes the poll), or a wake-up. Returns the
    /// socket's `revents`, or the error.
    func waitForSocket(_ socket: Int32, events: () -> Int16) -> (revents: Int16, error: Int32) {
        wait(socket, events: events, timeout: 1000)
    }

    /// Sleeps until `deadline`, or until `cancelled` says so when woken. Set what `cancelled` reads before waking.
    func sleep(until deadline: ContinuousClock.Instant, unless cancelled: () -> Bool) {
        while case let left = deadline - .now, left > .zero {
            let (seconds, attoseconds) = left.components
            let milliseconds = min(Int64(Int32.max), seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            if wait(-1, events: { 0 }, timeout: Int32(milliseconds), cancelled: cancelled).error == ECANCELED { return }
        }
    }

    /// Counts as asleep, then polls `socket` (none: -1) and the pipe for up to `timeout` ms; returns ECANCELED at
    /// once, without polling, if `cancelled` says so by then.
    private func wait(_ socket: Int32, events: () -> Int16, timeout: Int32, cancelled: () -> Bool = { false }) -> (revents: Int16, error: Int32) {
        asleep.store(true, ordering: .sequentiallyConsistent)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if cancelled() {
            asleep.store(false, ordering: .sequentiallyConsistent)
            return (0, ECANCELED)
        }
        var fds = (pollfd(fd: socket, events: events(), revents: 0), pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0))
        let ready = withUnsafeMutableBytes(of: &fds) { poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, timeout) }
        let error = ready < 0 ? errno : 0
        asleep.store(false, ordering: .sequentiallyConsistent)
        if fds.1.revents != 0 {
            var sink: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            while withUnsafeMutableBytes(of: &sink, { read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
        }
        return (ready < 0 ? 0 : fds.0.revents, error)
    }
}
