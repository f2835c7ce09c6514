import CMosquitto
import Dispatch
import Logging
import Synchronization

/// One libmosquitto client: one network thread (``NetworkLoop``) per client, not per message.
///
/// `@unchecked Sendable` is sound because the only non-Sendable stored property is the C handle, a `let`
/// that is never reassigned; libmosquitto guards its own state with internal mutexes once the network
/// thread runs, a fresh session (which re-creates those mutexes) takes the handle alone (``SessionLock``), and all
/// Swift-side mutable state lives in `ClientCore` behind a `Mutex`. The handle is
/// destroyed in `deinit`, after `stop()` has joined the network thread, so no callback can outlive it.
///
/// Locks and their order (a thread holding one may only take those to its right):
///
///     operations (serial queue) → lifecycle (Mutex) → core.state (Mutex)
///     NetworkLoop.reconnecting (Mutex) → core.session (SessionLock) → core.state (Mutex)
///
/// The completions of the publishes a fresh session fails run inside `reconnecting` (or on `operations`), after
/// `core.session` is released: they may take the caller's locks, which must never wait for the client's.
/// The calls into libmosquitto that block or join (`connect`, starting and joining the network loop, `disconnect`)
/// run only on `operations`, which serialises them, and never inside a `Mutex`: the mutexes guard Swift
/// state for the moment it takes to read or flip it. libmosquitto's network thread takes the mutexes
/// (briefly, in callbacks) but never waits for `operations`, so `operations` can always join it, even while
/// a fatal disconnect on that thread schedules a retry.
public final class MosquittoClient: @unchecked Sendable {
    /// The options the client was created with.
    public let options: MQTTClientOptions
    /// Every incoming message, copied out of the C callback. Single consumer; finishes after `stop()`. Stays empty
    /// once `handle(messages:events:)` was called.
    public let messages: AsyncStream<MQTTMessage>
    /// Connection state changes. Single consumer; finishes after `stop()`. Stays empty once `handle(messages:events:)`
    /// was called.
    public let connectionEvents: AsyncStream<MQTTConnectionEvent>

    private let handle: OpaquePointer
    private let core: ClientCore
    /// Wakes the network thread when a packet for it to send was queued from another thread (internal: tests fail
    /// its poll).
    let waker: LoopWaker
    private let logger: Logger
    /// Runs the blocking lifecycle calls into libmosquitto one at a time, outside every `Mutex`.
    private let operations = DispatchQueue(label: "gatehouse.mosquitto.lifecycle")
    /// The network thread's state and the task that retries connecting; held only to read or change them.
    private let lifecycle = Mutex(Lifecycle())

    private struct Lifecycle {
        /// The network thread, from its start until it is joined. Changed only on `operations`.
        var network: NetworkLoop?
        var retry: Task<Void, Never>?
    }

    /// Creates the client and applies MQTT 5, credentials, TLS, will, in-flight window and reconnect backoff.
    /// Nothing is sent until `start()` or `connect(timeout:)`.
    ///
    /// - Throws: `MosquittoError` when libmosquitto rejects an option (for example an unreadable CA file).
    public init(options: MQTTClientOptions, logger: Logger) throws {
        _ = MosquittoLibrary.initialized
        let (messages, messageContinuation) = AsyncStream.makeStream(of: MQTTMessage.self)
        let (events, eventContinuation) = AsyncStream.makeStream(of: MQTTConnectionEvent.self)
        var logger = logger
        logger[metadataKey: "mqtt.client"] = "\(options.clientID)"
        let core = ClientCore(
            logger: logger,
            options: options,
            messageContinuation: messageContinuation,
            eventContinuation: eventContinuation
        )
        guard
            let handle = SocketBuffers.withoutSocketPairs({
                mosquitto_new(
                    options.clientID.isEmpty ? nil : options.clientID,
                    options.cleanStart,
                    Unmanaged.passUnretained(core).toOpaque()
                )
            })
        else {
            throw MosquittoError(
                code: .other,
                message: "cannot create MQTT client '\(options.clientID)': "
                    + (options.clientID.isEmpty && !options.cleanStart
                        ? "a client ID is required without clean start" : MosquittoError.describe(.errno))
            )
        }
        let waker: LoopWaker
        do {
            try Self.configure(handle, options: options)
            waker = try LoopWaker()
        } catch {
            mosquitto_destroy(handle)
            throw error
        }
        Self.installCallbacks(handle)
        self.options = options
        self.messages = messages
        self.connectionEvents = events
        self.handle = handle
        self.core = core
        self.waker = waker
        self.logger = logger
        core.onNetworkThreadExit.withLock { handler in
            handler = ClientCore.Hook { [weak self] in self?.scheduleRetry() }
        }
    }

    deinit {
        // Nobody else holds the client (a retry in progress holds it strongly), so nothing runs on
        // `operations` and the shutdown may run right here; `sync` could even be called from that queue.
        stop(publishingWill: false, shutDown: { $0() })
        mosquitto_destroy(handle)
    }

    /// Hands every incoming message and every connection event to these handlers, instead of to `messages` and
    /// `connectionEvents`: on the network thread, in the order they happened there (so a connection's `.connected`
    /// comes before any message it brings, its `.disconnected` after). The one exception: a first connection attempt
    /// of `start()` that fails at once reports `.disconnected` on the caller's thread. Call it before `start()`.
    ///
    /// No thread hop and no queue between the socket and the handlers: a request reaches its device sooner, and a
    /// burst of incoming messages is held in the broker's socket while the handler works, not in an unbounded
    /// stream. The handlers must not block: while they run, this client neither reads nor writes. They may publish.
    public func handle(
        messages: @escaping @Sendable (MQTTMessage) -> Void, events: @escaping @Sendable (MQTTConnectionEvent) -> Void
    ) {
        core.handlers.withLock { $0 = ClientCore.Handlers(message: messages, event: events) }
    }

    /// True while the broker has accepted the current connection.
    public var isConnected: Bool {
        core.state.withLock { $0.connected }
    }

    /// Starts connecting in the background and keeps reconnecting forever with backoff.
    /// Never throws because the broker is unreachable; watch `connectionEvents` instead. Calling it again is a no-op.
    ///
    /// - Throws: `MosquittoError(.closed)` after `stop()`.
    public func start() throws {
        guard try beginRunning() else { return }
        guard let (rc, reason) = operations.sync(execute: { attemptConnection() }), rc != .success else { return }
        let message = "cannot reach broker at \(options.address): \(reason)"
        logger.debug("MQTT broker unreachable; retrying in the background", metadata: ["mqtt.error": "\(message)"])
        core.report(.disconnected(reason: message))
        scheduleRetry()
    }

    /// Connects now, for one-shot tools. On success the background loop keeps the connection alive as with `start()`.
    /// On failure the client is idle again and `connect` or `start` may be retried.
    ///
    /// - Throws: `MosquittoError` with `.unreachable` ("cannot reach broker at HOST:PORT: Connection refused"),
    ///   `.connectionRefused` ("broker at HOST:PORT refused the connection: not authorized (0x87)"), `.timeout`,
    ///   or `.closed` after `stop()`.
    public func connect(timeout: Duration = .seconds(5)) async throws {
        guard try beginRunning() else {
            try await waitUntilConnected(timeout: timeout)
            return
        }
        guard let (rc, reason) = await onOperations({ self.attemptConnection() }) else { throw ClientCore.closedError }
        guard rc == .success else {
            core.state.withLock { if $0.phase == .running { $0.phase = .idle } }
            let code = MosquittoError(rc: rc, context: "").code
            throw MosquittoError(
                code: code == .other ? .unreachable : code,
                message: "cannot reach broker at \(options.address): \(reason)",
                resultCode: rc
            )
        }
        do {
            try await waitForConnection(timeout: timeout, failFast: true)
        } catch {
            await onOperations { self.haltLoop() }
            throw error
        }
    }

    /// Waits until the broker has accepted a connection; returns at once if it already has.
    ///
    /// - Throws: `MosquittoError(.timeout)` if not connected within `timeout`, `.closed` after `stop()`.
    public func waitUntilConnected(timeout: Duration) async throws {
        try await waitForConnection(timeout: timeout, failFast: false)
    }

    /// Publishes a message.
    ///
    /// QoS 0 returns once libmosquitto has the message. QoS 1 returns when the broker's PUBACK arrives. Either throws
    /// `.notConnected` while there is no connection. A QoS 1 publish is answered on the connection it went out on: if
    /// that connection ends first it throws `.connectionLost` and is not sent again (whether the broker got it is
    /// unknown; a retry is the caller's).
    ///
    /// - Throws: `MosquittoError` `.publishRejected` if the PUBACK carries a failure reason (>= 0x80),
    ///   `.closed` after `stop()`, `.other` for an invalid topic or oversized payload.
    public func publish(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS,
        retain: Bool = false,
        properties: MQTTProperties = .init()
    ) async throws {
        let reason: Int32 = try await withCheckedThrowingContinuation { continuation in
            do {
                try send(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties, waiter: .continuation(continuation))
            } catch {
                continuation.resume(throwing: error)
            }
        }
        if MQTTReasonCode(reason).isFailure { throw Self.rejection(topic: topic, reason: MQTTReasonCode(reason)) }
    }

    /// Publishes without suspending: the message is in libmosquitto's queue when this returns (so calls
    /// from one thread keep their order), and `completion` runs with nil once the PUBACK arrives (QoS 1) or at
    /// once (QoS 0), or with the error (as `publish` throws it). It must not block. It runs on the network thread, except
    /// when the PUBACK arrived before this call had registered the completion (on a busy box), or when nothing was
    /// queued (QoS 0): then on the caller's thread, before this returns; and `.connectionLost` after an error that ended
    /// the network thread comes from the client's `operations` queue, with the next connection attempt.
    ///
    /// - Throws: what `publish` throws before anything was sent (then `completion` never runs).
    public func publish(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS,
        retain: Bool = false,
        properties: MQTTProperties = .init(),
        completion: @escaping @Sendable (MosquittoError?) -> Void
    ) throws {
        try send(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties, waiter: .completion(topic: topic, completion))
    }

    /// Hands a message to libmosquitto and registers `waiter` for its PUBACK (QoS 1), or answers it at once (QoS 0).
    /// Both while no fresh session can start: a waiter registered after one would wait for a PUBACK that never comes.
    private func send(
        topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool, properties: MQTTProperties, waiter: ClientCore.PublishWaiter
    ) throws {
        var mid: Int32 = 0
        // The closures capture the handle, not `self`: retaining the client (which has a weak reference, so a side
        // table) costs an atomic on that table, on every publish.
        let (handle, core) = (handle, core)
        var outcome: Result<Int32, MosquittoError>?
        var behindFullWindow = false
        let rc = core.session.sharing {
            guard core.sessionConnecting.load(ordering: .acquiring) else { return MosquittoResultCode.noConnection }
            core.beginSend()
            if qos == .atMostOnce { core.beginQoS0Publish(bytes: payload.count) }
            // `withCString` lends a native string's own bytes (or a stack copy of a small one); the implicit
            // String-to-pointer conversion copies the topic into a new array on every publish.
            let rc = topic.withCString { cTopic in
                properties.withCProperties { cProperties in
                    payload.withUnsafeBytes { bytes in
                        MosquittoResultCode(
                            mosquitto_publish_v5(
                                handle, &mid, cTopic, Int32(clamping: bytes.count), bytes.baseAddress, qos.rawValue, retain, cProperties
                            )
                        )
                    }
                }
            }
            if qos == .atMostOnce {
                core.finishQoS0Publish(mid: rc == .success ? mid : nil, bytes: payload.count)
            } else if rc == .success {
                (outcome, behindFullWindow) = core.registerPublish(mid: mid, waiter: waiter)
            } else {
                // NO_CONN (the connection was lost): libmosquitto queued it all the same; the fresh session that follows
                // forgets it.
                core.abandonSend()
            }
            return rc
        }
        if !behindFullWindow { waker.wake() }
        guard rc == .success else {
            if rc == .noConnection, core.state.withLock({ $0.phase == .stopped }) { throw ClientCore.closedError }
            throw MosquittoError(rc: rc, context: "cannot publish to \(topic)")
        }
        // Outside the lock: a completion may publish again.
        if qos == .atMostOnce { waiter.resume(with: .success(0)) } else if let outcome { waiter.resume(with: outcome) }
    }

    /// Whether fewer than ``MQTTClientOptions/maxQueuedAtMostOnce`` QoS 0 publishes, and fewer than
    /// ``MQTTClientOptions/maxQueuedAtMostOnceBytes`` of their large payloads, wait unwritten in libmosquitto, whose
    /// queue has no limit of its own: a caller that publishes QoS 0 faster than the broker takes it holds back while
    /// this is false, until ``onRoomForAtMostOnce(_:)``'s hook runs.
    public var hasRoomForAtMostOnce: Bool { core.atMostOnceBelowLimits() }

    /// Sets what runs after ``wantRoomForAtMostOnce()``, once fewer than half the allowed QoS 0 publishes (and bytes)
    /// are unwritten: on the network thread (as it writes them, or starts a fresh session, which drops them), or on the
    /// caller's. It must not block.
    public func onRoomForAtMostOnce(_ hook: @escaping @Sendable () -> Void) {
        core.roomForAtMostOnce.withLock { $0 = ClientCore.Hook(hook) }
    }

    /// Asks for the hook of ``onRoomForAtMostOnce(_:)`` to run once, when there is room: at once, on this thread, if
    /// there is already.
    public func wantRoomForAtMostOnce() {
        core.roomForAtMostOnceWanted.store(true, ordering: .sequentiallyConsistent)
        core.offerRoomForAtMostOnce()
    }

    static func rejection(topic: String, reason: MQTTReasonCode) -> MosquittoError {
        MosquittoError(
            code: .publishRejected,
            message: "broker refused publish to \(topic): \(reason)",
            reasonCode: reason
        )
    }

    /// Subscribes to `filters` (including `$share/group/filter`) and returns on SUBACK.
    ///
    /// The subscription is remembered and sent again after every reconnect. While disconnected the call
    /// waits for the next connection.
    ///
    /// - Throws: `MosquittoError(.subscribeRejected)` if the broker refuses any filter (those are not
    ///   remembered), `.closed` after `stop()`.
    /// - Parameter identifier: an MQTT 5 Subscription Identifier (1...268435455), reported back in
    ///   `MQTTProperties.subscriptionIdentifiers` of each matching message, to tell overlapping subscriptions apart.
    /// - Parameter retainAsPublished: MQTT 5 Retain As Published: messages forwarded while subscribed keep the
    ///   publisher's retain flag (otherwise only those sent because of the subscription carry it).
    public func subscribe(
        _ filters: [String], qos: MQTTQoS = .atLeastOnce, identifier: UInt32? = nil, retainAsPublished: Bool = false
    ) async throws {
        guard !filters.isEmpty else { return }
        let codes: [Int32] = try await withCheckedThrowingContinuation { continuation in
            let registration: (groupID: Int, generation: Int, connected: Bool)? = core.state.withLock { state in
                guard state.phase != .stopped else { return nil }
                let groupID = state.makeID()
                state.groups[groupID] = .init(
                    filters: filters, qos: qos, identifier: identifier, retainAsPublished: retainAsPublished, waiter: continuation)
                return (groupID, state.generation, state.connected)
            }
            guard let registration else {
                continuation.resume(throwing: ClientCore.closedError)
                return
            }
            // Not connected: the next on_connect subscribes every remembered group, this one included.
            guard registration.connected else { return }
            core.session.sharing {
                core.beginSend()
                var mid: Int32 = 0
                // Between a fresh session and its connection attempt, sent by the next on_connect instead.
                let rc = !core.sessionConnecting.load(ordering: .acquiring) ? .noConnection : ClientCore.sendSubscribe(
                    handle: handle, filters: filters, qos: qos, identifier: identifier, retainAsPublished: retainAsPublished, mid: &mid)
                core.registerSubscribe(
                    groupID: registration.groupID,
                    generation: registration.generation,
                    mid: rc == .success ? mid : nil,
                    rc: rc
                )
            }
            waker.wake()
        }
        let refused = zip(filters, codes.map(MQTTReasonCode.init)).filter { $0.1.isFailure }
        if let (_, reason) = refused.first {
            throw MosquittoError(
                code: .subscribeRejected,
                message: "broker refused subscription to \(refused.map(\.0).joined(separator: ", ")): \(reason)",
                reasonCode: reason
            )
        }
    }

    /// Unsubscribes and forgets `filters`; returns on UNSUBACK, or at once while disconnected (a clean-start
    /// session does not keep subscriptions, and they will not be renewed).
    ///
    /// - Throws: `MosquittoError(.closed)` after `stop()`.
    public func unsubscribe(_ filters: [String]) async throws {
        guard !filters.isEmpty else { return }
        let removed = Set(filters)
        let (connected, generation, emptied) = try core.state.withLock {
            state throws(MosquittoError) -> (Bool, Int, [ClientCore.SubscribeContinuation]) in
            guard state.phase != .stopped else { throw ClientCore.closedError }
            var emptied: [ClientCore.SubscribeContinuation] = []
            for (groupID, group) in state.groups {
                let kept = group.filters.filter { !removed.contains($0) }
                guard kept.count != group.filters.count else { continue }
                if kept.isEmpty {
                    state.groups[groupID] = nil
                    if let waiter = group.waiter { emptied.append(waiter) }
                } else {
                    state.groups[groupID]?.filters = kept
                }
            }
            return (state.connected, state.generation, emptied)
        }
        // A subscribe still waiting for its connection whose filters were all removed has nothing left to do.
        for waiter in emptied { waiter.resume(returning: []) }
        guard connected else { return }
        var mid: Int32 = 0
        let rc = core.session.sharing {
            core.beginSend()
            let rc = !core.sessionConnecting.load(ordering: .acquiring)
                ? .noConnection : ClientCore.sendUnsubscribe(handle: handle, filters: filters, mid: &mid)
            if rc != .success { core.abandonSend() }
            return rc
        }
        waker.wake()
        guard rc == .success else {
            if rc == .noConnection { return }
            throw MosquittoError(rc: rc, context: "cannot unsubscribe from \(filters.joined(separator: ", "))")
        }
        try await withCheckedThrowingContinuation { continuation in
            core.registerUnsubscribe(mid: mid, generation: generation, continuation: continuation)
        }
    }

    /// Disconnects cleanly (the broker discards the will), stops the network thread, fails waiting calls with
    /// `.closed` and finishes both streams. Idempotent.
    public func stop() {
        stop(publishingWill: false)
    }

    /// Like `stop()`; with `publishingWill` the DISCONNECT carries reason 0x04 ("disconnect with will message"),
    /// so the broker publishes the will as if the client had crashed. Useful for tests and drills.
    public func stop(publishingWill: Bool) {
        stop(publishingWill: publishingWill, shutDown: { operations.sync(execute: $0) })
    }

    /// Marks the client stopped, then disconnects and joins the network thread through `shutDown` (which runs
    /// the closure on `operations`, or in place from `deinit`), and only then fails the waiters.
    private func stop(publishingWill: Bool, shutDown: (() -> Void) -> Void) {
        // From here on no attempt starts a connection (each checks the phase on `operations`) and no retry is scheduled.
        let waiters = core.state.withLock { state -> ClientCore.Waiters? in
            guard state.phase != .stopped else { return nil }
            state.phase = .stopped
            return ClientCore.Waiters(takingFrom: &state)
        }
        guard let waiters else { return }
        cancelRetry()
        let reason = publishingWill ? Int32(MQTT_RC_DISCONNECT_WITH_WILL_MSG.rawValue) : 0
        shutDown {
            // An attempt that ran before this one may have started the loop: this undoes it.
            joinNetworkThread { _ = mosquitto_disconnect_v5(handle, reason, nil) }
        }
        core.state.withLock { $0.connected = false }
        waiters.fail(with: ClientCore.closedError)
        core.messageContinuation.finish()
        // The handlers may hold what holds this client: dropped once nothing can call them.
        core.handlers.withLock { $0 = nil }
        core.eventContinuation.finish()
        logger.debug("MQTT client stopped", metadata: ["mqtt.broker": "\(options.address)"])
    }

    // MARK: Internals

    /// Moves from idle to running; false if already running.
    private func beginRunning() throws(MosquittoError) -> Bool {
        try core.state.withLock { state throws(MosquittoError) -> Bool in
            switch state.phase {
            case .stopped: throw ClientCore.closedError
            case .running: return false
            case .idle:
                state.phase = .running
                state.lastFailure = nil
                return true
            }
        }
    }

    /// Runs `body` on `operations` without blocking the caller's thread.
    private func onOperations<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            operations.async { continuation.resume(returning: body()) }
        }
    }

    /// Runs `disconnect`, then joins the network thread if it was started. Only on `operations`; blocks until
    /// the thread has returned (after writing the DISCONNECT, if there was a connection).
    private func joinNetworkThread(after disconnect: () -> Void = {}) {
        guard let network = lifecycle.withLock({ $0.network }) else { return disconnect() }
        network.finish(after: disconnect)
        lifecycle.withLock { $0.network = nil }
    }

    /// One connection attempt; starts the network thread once libmosquitto has a socket. Returns libmosquitto's
    /// result with its text (read from `errno` right away), or nil when the client is no longer running.
    /// Only on `operations`.
    ///
    /// libmosquitto 2.0.11 has no `connect_bind_async_v5`, so CONNECT carries no properties (the protocol is still
    /// MQTT 5, set as an option). When the asynchronous connect fails at once (connection refused on loopback,
    /// DNS failure) libmosquitto's network thread does not retry by itself, hence `scheduleRetry()`.
    private func attemptConnection() -> (rc: MosquittoResultCode, reason: String)? {
        dispatchPrecondition(condition: .onQueue(operations))
        guard core.state.withLock({ $0.phase == .running }) else { return nil }
        if let network = lifecycle.withLock({ $0.network }) {
            // A running loop reconnects by itself, and a fresh session must not pull the handle from under it (a retry
            // left from a loop that ended before a failed `connect()` may find the next `connect()`'s loop, healthy).
            // Only a loop that returned (or is returning) by itself is replaced, and its join is quick.
            guard network.hasEnded else { return (.success, "") }
            joinNetworkThread()
        }
        let (rc, reason) = Self.connectAfresh(handle, core: core)
        guard rc == .success else { return (rc, reason) }
        do {
            let network = try NetworkLoop(handle: handle, core: core, waker: waker)
            lifecycle.withLock { $0.network = network }
        } catch {
            // No thread to serve the attempt: the session goes, its socket with it.
            _ = Self.startFreshSession(handle, core: core)
            return (.errno, error.message)
        }
        return (rc, "")
    }

    /// Repeats `attemptConnection()` with the reconnect policy until it gets a socket; from then on the
    /// network thread reconnects by itself. Cancelled by `stop()`.
    /// Also used when the network thread ended after an error libmosquitto considers fatal (called on that
    /// thread, so it must not wait for `operations`): the attempt first joins the finished thread, then
    /// starts a new one.
    private func scheduleRetry() {
        let policy = options.reconnect
        let task = Task { [weak self] in
            var attempt = 0
            while true {
                do { try await Task.sleep(for: policy.delay(attempt: attempt)) } catch { return }
                guard let self, let (rc, reason) = await self.onOperations({ self.attemptConnection() })
                else { return }
                if rc == .success { return }
                self.logger.debug(
                    "MQTT connection attempt failed",
                    metadata: ["mqtt.broker": "\(self.options.address)", "mqtt.error": "\(reason)"]
                )
                attempt += 1
            }
        }
        // Under `lifecycle` (then `core.state`, in lock order) so a concurrent `stop()` either finds this task to
        // cancel or is seen here.
        let superseded: Task<Void, Never>? = lifecycle.withLock { lifecycle in
            guard core.state.withLock({ $0.phase != .stopped }) else { return task }
            defer { lifecycle.retry = task }
            return lifecycle.retry
        }
        superseded?.cancel()
    }

    /// Cancels the retry task, if one is scheduled.
    private func cancelRetry() {
        lifecycle.withLock { lifecycle in
            defer { lifecycle.retry = nil }
            return lifecycle.retry
        }?.cancel()
    }

    /// Undoes a failed `connect()`: the client is idle again and may be started later. Only on `operations`.
    private func haltLoop() {
        dispatchPrecondition(condition: .onQueue(operations))
        cancelRetry()
        joinNetworkThread { _ = mosquitto_disconnect_v5(handle, 0, nil) }
        // The attempt's session goes with it (its socket too): a publish until the next attempt fails at once, and one
        // made meanwhile is answered.
        _ = Self.startFreshSession(handle, core: core)
        core.state.withLock { state in
            state.connected = false
            if state.phase == .running { state.phase = .idle }
        }
    }

    private func waitForConnection(timeout: Duration, failFast: Bool) async throws {
        let address = options.address
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.connectionSignal(failFast: failFast) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw MosquittoError(
                    code: .timeout,
                    message: "not connected to broker at \(address) within \(timeout); is it running and reachable?"
                )
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func connectionSignal(failFast: Bool) async throws {
        let core = self.core
        let id = core.state.withLock { $0.makeID() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = core.state.withLock { state in
                    if state.phase == .stopped { return .failure(ClientCore.closedError) }
                    if state.connected { return .success(()) }
                    if failFast, let failure = state.lastFailure { return .failure(failure) }
                    state.connectWaiters[id] = .init(failFast: failFast, continuation: continuation)
                    return nil
                }
                if let immediate {
                    continuation.resume(with: immediate)
                } else if Task.isCancelled {
                    // Cancelled before registration: the cancellation handler found nothing to remove.
                    core.state.withLock { $0.connectWaiters.removeValue(forKey: id) }?
                        .continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            core.state.withLock { $0.connectWaiters.removeValue(forKey: id) }?
                .continuation.resume(throwing: CancellationError())
        }
    }
}

/// `mosquitto_lib_init()` exactly once per process.
enum MosquittoLibrary {
    static let initialized: Bool = {
        mosquitto_lib_init()
        return true
    }()
}
