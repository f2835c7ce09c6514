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
/// fatal, and after the client's own DISCONNECT), except that every connection starts a fresh session
/// (``MosquittoClient/startFreshSession(_:core:)``) instead of sending the last one's unanswered publishes again.
/// Until the broker's CONNACK a pass is libmosquitto's own (`mosquitto_loop`, which completes a non-blocking connect
/// and drives the TLS handshake); from then on it is built from libmosquitto's pieces (`mosquitto_loop_read`,
/// `_write`, `_misc`) around a `poll` of ours, for three reasons, each measured (docs/benchmarks.md, "Optimisations"):
/// - libmosquitto wakes its thread through a socket pair: one byte per queued packet, and `mosquitto_loop` reads
///   one byte per pass, so N packets queued meant N passes of the whole loop (select, read, write, keepalive)
///   after the pass that had already written them all. This loop is woken through ``LoopWaker`` instead, only
///   when it sleeps (and once per ``PublishBatch``), and libmosquitto goes without its socket pair
///   (``SocketBuffers/withoutSocketPairs(_:)``): once full, its writes to it failed, a system call per publish.
/// - The broker's socket is read and written through ``SocketBuffers`` while a pass runs (from the CONNACK on).
///   libmosquitto reads each packet with up to three `read()`s (its first byte, its length, the rest: three for a
///   PUBACK) and writes each with its own `write()`; a pass now fills a buffer with one `read()` and sends all it
///   wrote with one `write()` at its end (every publish the PUBACKs read in that pass released, in one segment:
///   on loopback the writer pays for the receiver's side too). That replaced a `TCP_CORK` around the writes.
/// - Work that the callbacks hand to ``AfterPass`` (the device loops' wake-ups for their acks) runs at the end of the
///   pass, after its writes: a thread woken mid-pass preempted this one on a busy box, and the pass's publishes waited.
/// - The wait for the socket holds out for half the PUBACKs the broker owes, for a while that adapts to the broker
///   (``PubackCoalescing``): a broker writes each as it goes, and the thread woke for one or two at a time. The
///   waits are bounded finer than a millisecond (`ppoll`).
/// - The wait between reconnect attempts follows ``MQTTReconnectPolicy/delay(attempt:)`` (jitter included) and
///   ends at once when the client stops (and only then: publishing during an outage does not shorten it).
///
/// When it returns by itself (after a fatal error) it tells the client, whose retry task starts a new one.
///
/// Publishing threads never write to the socket (`mosquitto_threaded_set`, made by every fresh session): libmosquitto
/// queues their packets, and the client wakes this thread (``LoopWaker/wake()``), unless the packet is a QoS 1 publish
/// that waits behind a full window (``ClientCore/registerPublish(mid:waiter:)``).
final class NetworkLoop: @unchecked Sendable {
    // @unchecked: `thread` is written only in init, `handle` is a `let`; libmosquitto guards its state with its own
    // mutexes in threaded mode, and everything else here is atomic or behind a Mutex.
    private let handle: OpaquePointer
    private let core: ClientCore
    private let waker: LoopWaker
    /// The broker's socket's buffers; used on the network thread only.
    private let buffers: SocketBuffers
    /// The broker's socket's low-water mark; used on the network thread only.
    private var coalescing = PubackCoalescing()
    private var thread = pthread_t()
    /// Set by `finish`: the loop ends once libmosquitto has no socket (the DISCONNECT was written, or there was no
    /// connection), as `loop_forever` ends in libmosquitto's "disconnecting" state.
    private let stopping = Atomic<Bool>(false)
    /// How long a wait for the socket lasts at most, unless ``PubackCoalescing`` bounds it (a pass then keeps the
    /// connection alive).
    private static let idleWait: Duration = .seconds(1)
    /// Set when the loop returns by itself (a fatal error), before it tells the client.
    private let ended = Atomic<Bool>(false)
    /// Held around each fresh session and reconnect, and around the client's disconnect in `finish`, so that no
    /// reconnect starts after the client asked to stop.
    private let reconnecting = Mutex(())

    /// Starts the thread. The handle must have a socket or a connection attempt under way (`connect_*_async`).
    init(handle: OpaquePointer, core: ClientCore, waker: LoopWaker) throws(MosquittoError) {
        self.handle = handle
        self.core = core
        self.waker = waker
        self.buffers = try SocketBuffers()
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
        waker.wakeNow()
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
                ended.store(true, ordering: .sequentiallyConsistent)
                if !isStopping { core.networkLoopEnded() }
                return
            }
            if core.acceptedConnections.load(ordering: .relaxed) != acceptedBefore { attempt = 0 }
            // The session ends with its connection, now rather than at the next attempt: its unanswered publishes fail
            // at once (their retries are the caller's), not after the wait.
            reconnecting.withLock { _ in if !isStopping { _ = MosquittoClient.startFreshSession(handle, core: core) } }
            // What the failed publishes' completions handed on (the devices' nacks, say) runs now, not after the wait.
            endPass()
            while true {
                if isStopping { return }
                waker.sleep(until: .now + policy.delay(attempt: attempt)) { isStopping }
                attempt += 1
                // Non-blocking, as the first attempt: the passes complete the connect, and a stop does not wait for it.
                let reconnected: Bool? = reconnecting.withLock { _ in
                    isStopping ? nil : MosquittoClient.connectAfresh(handle, core: core).rc == .success
                }
                guard let reconnected else { return }
                if reconnected { break }
            }
        }
    }

    private var isStopping: Bool { stopping.load(ordering: .sequentiallyConsistent) }

    /// Whether the loop returned by itself, after an error libmosquitto considers fatal.
    var hasEnded: Bool { ended.load(ordering: .sequentiallyConsistent) }

    /// Asked to stop while the broker has not accepted the current connection (or there is none).
    private var isStoppingBeforeAccepted: Bool { isStopping && !core.linkUp.load(ordering: .relaxed) }

    /// One pass, as `mosquitto_loop` makes it: wait for the socket (up to a second, or as ``PubackCoalescing`` bounds
    /// it) or a wake-up, read what arrived, write what is queued, then keepalive. Returns the first failure and
    /// `errno` as it left it.
    private func pass() -> (MosquittoResultCode, Int32) {
        let socket = mosquitto_socket(handle)
        guard socket >= 0 else {
            connectionEnded()
            return (.noConnection, 0)
        }
        // Before the CONNACK, libmosquitto's own pass: in 2.0.11 only `mosquitto_loop` completes a non-blocking
        // connect's TLS handshake (this loop's pass would see the socket writable and spin without sending it).
        guard core.linkUp.load(ordering: .relaxed) else {
            connectionEnded()
            return connectingPass(socket)
        }
        let result = buffers.serving(socket) { bufferedPass(socket) }
        if result.0 != .success || mosquitto_socket(handle) < 0 { connectionEnded() }
        return result
    }

    /// Forgets what belonged to the broker's socket (there is none, or a new one is being connected).
    private func connectionEnded() {
        buffers.reset()
        coalescing.reset()
    }

    /// A pass of a connection the broker accepted, with the socket's reads and writes going through `buffers`.
    private func bufferedPass(_ socket: Int32) -> (MosquittoResultCode, Int32) {
        let pubacks = core.pubacks
        let bound = coalescing.prepare(
            socket,
            owed: buffers.hasOutput ? 0 : pubacks.owed,  // output waiting for the socket: the wait is for that
            answered: pubacks.answered, now: .now)
        // Input already in the buffer is not in the socket any more: a poll would not show it.
        let hadInput = buffers.hasInput
        let (revents, ranOut, error) = waker.waitForSocket(socket, timeout: hadInput ? .zero : bound ?? Self.idleWait) {
            Int16(POLLIN) | (mosquitto_want_write(handle) || buffers.hasOutput ? Int16(POLLOUT) : 0)
        }
        let readable = Int16(POLLIN | POLLHUP | POLLERR)
        var ready = revents
        if coalescing.waitEnded(socket, readable: ready & readable != 0 || hadInput, ranOut: ranOut && !hadInput) {
            ready |= Int16(POLLIN)
        }
        if error == EINTR { return (.success, 0) }
        guard error == 0 else {
            // `poll` itself failed (no memory): libmosquitto knows nothing of it, and the reconnect that follows
            // closes the socket without telling. The connection is ended here as libmosquitto ends a lost one.
            core.handleDisconnect(rc: MosquittoResultCode.errno.rawValue)
            return (.errno, error)
        }
        if ready & readable != 0 || buffers.hasInput {
            // libmosquitto reads no more packets per call than it has messages in flight: again while the buffer
            // holds more (one read of the socket per pass bounds it) and the last call took some of it.
            core.readingPackets.store(true, ordering: .relaxed)
            defer { core.readingPackets.store(false, ordering: .relaxed) }
            var left: Int
            repeat {
                left = buffers.inputLength
                let rc = MosquittoResultCode(mosquitto_loop_read(handle, 1))
                if rc != .success || mosquitto_socket(handle) < 0 { return (rc, errno) }
            } while buffers.inputLength > 0 && buffers.inputLength < left
        }
        // Also what the callbacks of the reads above queued (the next publishes, the PUBACKs of incoming QoS 1).
        if ready & Int16(POLLOUT) != 0 || mosquitto_want_write(handle) {
            let rc = MosquittoResultCode(mosquitto_loop_write(handle, 1))
            if rc != .success || mosquitto_socket(handle) < 0 { return (rc, errno) }
        }
        // What the socket does not take now waits for the next pass (which polls for POLLOUT); a failure is
        // reported to libmosquitto by that pass's read.
        buffers.flush()
        errno = 0
        return (MosquittoResultCode(mosquitto_loop_misc(handle)), errno)
    }

    /// A pass before the CONNACK: wait for the socket as `mosquitto_loop` would (for what `mosquitto_want_write`
    /// says), but here, where ``LoopWaker`` can end the wait (libmosquitto has no socket pair to be woken through,
    /// see ``SocketBuffers/withoutSocketPairs(_:)``), then `mosquitto_loop` without a wait of its own.
    /// With TLS, a connection that failed (refused, reset) is ended here: libmosquitto
    /// 2.0.11 takes the TLS library's error on such a socket for "handshake still under way" and would go round
    /// at full speed until the keepalive gave up. Ended as libmosquitto ends a failed attempt: the disconnect
    /// callback, then a fresh session (`mosquitto_reinitialise` closes the socket), the wait and the next attempt.
    private func connectingPass(_ socket: Int32) -> (MosquittoResultCode, Int32) {
        let (_, _, error) = waker.waitForSocket(socket, timeout: Self.idleWait) {
            Int16(POLLIN) | (mosquitto_want_write(handle) ? Int16(POLLOUT) : 0)
        }
        guard error == 0 || error == EINTR else { return (.errno, error) }
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
        // Its reads may bring a PUBACK right behind the CONNACK (for a QoS 1 publish made before it), and its writes a
        // QoS 0 publish's "written" with the same callback: told apart by whether a publish waits for the id
        // (`ClientCore.ambiguousPublishCallbacks`).
        core.readingPackets.store(true, ordering: .relaxed)
        core.ambiguousPublishCallbacks.store(true, ordering: .relaxed)
        defer {
            core.readingPackets.store(false, ordering: .relaxed)
            core.ambiguousPublishCallbacks.store(false, ordering: .relaxed)
        }
        return (MosquittoResultCode(mosquitto_loop(handle, 0, 1)), errno)
    }
}

/// Wakes the network thread from its `poll`: a pipe it polls beside the broker's socket. Only a thread that finds
/// it asleep writes (one byte per sleep), so a publish from a device's event loop costs an atomic load while the
/// network thread is busy. One per client, shared by the network loops it starts.
final class LoopWaker: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32
    private let asleep = Atomic<Bool>(false)
    /// An `errno` the next wait returns instead of polling (tests: `poll` failing, which nothing else provokes).
    private let injectedPollFailure = Atomic<Int32>(0)

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

    /// Whether the network thread waits (for tests).
    var isAsleep: Bool { asleep.load(ordering: .sequentiallyConsistent) }

    /// Has the next wait fail with `error` instead of polling, and wakes the thread for it (tests).
    func failNextPoll(with error: Int32) {
        injectedPollFailure.store(error, ordering: .sequentiallyConsistent)
        wakeNow()
    }

    /// Wakes the network thread if it waits; called after queueing a packet it is to send (from any thread). Inside
    /// a ``PublishBatch`` the wake-up waits for the batch's end.
    func wake() {
        if PublishBatch.hold(self) { return }
        wakeNow()
    }

    func wakeNow() {
        // The fences pair up: either this thread sees the flag, or the network thread sees the queued packet.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        guard asleep.load(ordering: .sequentiallyConsistent), asleep.exchange(false, ordering: .sequentiallyConsistent) else { return }
        var byte: UInt8 = 0
        _ = write(writeEnd, &byte, 1)
    }

    /// Waits up to `timeout` until `socket` is ready for what `events` asks (evaluated once the thread
    /// counts as asleep, so that a packet queued meanwhile either shows in it or wakes the poll), or a wake-up.
    /// Returns the socket's `revents` and whether the time ran out (neither ready nor woken), or the error.
    func waitForSocket(_ socket: Int32, timeout: Duration, events: () -> Int16) -> (revents: Int16, ranOut: Bool, error: Int32) {
        self.wait(socket, events: events, timeout: timeout)
    }

    /// Sleeps until `deadline`, or until `cancelled` says so when woken. Set what `cancelled` reads before waking.
    func sleep(until deadline: ContinuousClock.Instant, unless cancelled: () -> Bool) {
        while case let left = deadline - .now, left > .zero {
            if wait(-1, events: { 0 }, timeout: left, cancelled: cancelled).error == ECANCELED { return }
        }
    }

    /// Counts as asleep, then polls `socket` (none: -1) and the pipe for up to `timeout`; returns ECANCELED at
    /// once, without polling, if `cancelled` says so by then.
    private func wait(
        _ socket: Int32, events: () -> Int16, timeout: Duration, cancelled: () -> Bool = { false }
    ) -> (revents: Int16, ranOut: Bool, error: Int32) {
        asleep.store(true, ordering: .sequentiallyConsistent)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if cancelled() {
            asleep.store(false, ordering: .sequentiallyConsistent)
            return (0, false, ECANCELED)
        }
        if injectedPollFailure.load(ordering: .relaxed) != 0 {
            asleep.store(false, ordering: .sequentiallyConsistent)
            return (0, false, injectedPollFailure.exchange(0, ordering: .relaxed))
        }
        var fds = (pollfd(fd: socket, events: events(), revents: 0), pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0))
        let ready = withUnsafeMutableBytes(of: &fds) { Self.poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, timeout) }
        let error = ready < 0 ? errno : 0
        asleep.store(false, ordering: .sequentiallyConsistent)
        if fds.1.revents != 0 {
            var sink: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            while withUnsafeMutableBytes(of: &sink, { read(readEnd, $0.baseAddress, $0.count) }) > 0 {}
        }
        return (ready < 0 ? 0 : fds.0.revents, ready == 0, error)
    }

    /// `poll` with a timeout finer than its milliseconds (``PubackCoalescing``'s patience is a fraction of one):
    /// `ppoll` where there is one.
    private static func poll(_ fds: UnsafeMutablePointer<pollfd>, _ count: nfds_t, _ timeout: Duration) -> Int32 {
        #if os(Linux)
        var limit = timeLimit(timeout)
        return ppoll(fds, count, &limit, nil)
        #else
        let (seconds, attoseconds) = max(timeout, .zero).components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Darwin.poll(fds, count, Int32(min(Int64(Int32.max), milliseconds)))
        #endif
    }

    /// `ppoll`'s form of a timeout (none below zero).
    static func timeLimit(_ timeout: Duration) -> timespec {
        let (seconds, attoseconds) = max(timeout, .zero).components
        return timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    }
}
