import CMosquitto
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// State shared between the Swift API (any thread) and libmosquitto's network thread (callbacks).
///
/// libmosquitto's `userdata` points at this object (unretained; `MosquittoClient` owns it and stops the
/// network thread before releasing it). Callbacks never block or await: they copy what they need, update
/// `state` under the mutex and resume continuations or yield into streams after releasing it.
///
/// Acknowledgements are matched to waiters by message id. The ack can arrive on the network thread before
/// the call that sent the packet has learned its id, so every sender bumps `sendsInProgress` before calling
/// into libmosquitto; an ack without a waiter is parked in `early*` while a send is in progress and picked
/// up by the sender when it registers. Parked acks nobody claims (acks for resubscriptions, a QoS 0 publish's
/// "written" taken for one before the CONNACK: see `ambiguousPublishCallbacks`) are discarded whenever no send is in
/// progress.
final class ClientCore: Sendable {
    typealias PublishContinuation = CheckedContinuation<Int32, any Error>
    typealias SubscribeContinuation = CheckedContinuation<[Int32], any Error>
    /// Who waits for a QoS 1 PUBACK: an async caller, or a callback run on the network thread
    /// (the gateway's per-message path, which must not create a task per message).
    enum PublishWaiter: Sendable {
        case continuation(PublishContinuation)
        /// `MosquittoClient.publish(…completion:)`: told nil, the refusal of a publish to `topic`, or the error. The
        /// topic is kept here rather than in a closure around the completion, which would be an allocation per publish.
        case completion(topic: String, @Sendable (MosquittoError?) -> Void)

        func resume(with result: Result<Int32, MosquittoError>) {
            switch self {
            case .continuation(let continuation):
                continuation.resume(with: result.mapError { $0 as any Error })
            case .completion(let topic, let completion):
                switch result {
                case .success(let raw):
                    let reason = MQTTReasonCode(raw)
                    completion(reason.isFailure ? MosquittoClient.rejection(topic: topic, reason: reason) : nil)
                case .failure(let error):
                    completion(error)
                }
            }
        }
    }

    typealias UnsubscribeContinuation = CheckedContinuation<Void, any Error>

    enum Phase {
        case idle
        case running
        case stopped
    }

    /// One `subscribe` call: remembered so it can be repeated after every reconnect.
    struct SubscriptionGroup {
        var filters: [String]
        var qos: MQTTQoS
        /// MQTT 5 Subscription Identifier sent with it, echoed on every message it matches.
        var identifier: UInt32?
        /// MQTT 5 Retain As Published: forwarded messages keep the publisher's retain flag.
        var retainAsPublished: Bool
        /// The caller of `subscribe` while it still waits for its first SUBACK.
        var waiter: SubscribeContinuation?
    }

    struct ConnectWaiter {
        /// Fail on the first refused or failed attempt (`connect`) instead of waiting for a later one.
        var failFast: Bool
        var continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var phase = Phase.idle
        var connected = false
        /// Bumped on every connect and disconnect, so a sender can tell the connection changed under it.
        var generation = 0
        var publishWaiters: [Int32: PublishWaiter] = [:]
        /// QoS 1 publishes libmosquitto gave an id still waiting for its PUBACK (its 16-bit ids are shared with QoS 0
        /// publishes and wrap), oldest first: each of that id's PUBACKs answers the oldest waiter, as libmosquitto
        /// matches them to its messages. Rare: looked up only when not empty.
        var reusedIDWaiters: [Int32: [PublishWaiter]] = [:]
        /// PUBACKs read on any connection, ever (the network thread's ``PubackCoalescing`` counts with it).
        var answeredPublishes = 0
        var earlyPublishAcks: [Int32: Int32] = [:]
        /// The large QoS 0 publishes libmosquitto holds unwritten (`unwrittenAtMostOnceBytes`).
        var unwrittenSizes = UnwrittenSizes()
        var groups: [Int: SubscriptionGroup] = [:]
        var subscribeMids: [Int32: Int] = [:]
        var earlySubacks: [Int32: [Int32]] = [:]
        var unsubscribeWaiters: [Int32: UnsubscribeContinuation] = [:]
        var earlyUnsubacks: Set<Int32> = []
        var connectWaiters: [Int: ConnectWaiter] = [:]
        /// Why the latest connection attempt failed, until one succeeds; lets `connect()` fail fast even if
        /// the failure came before it started waiting.
        var lastFailure: MosquittoError?
        var nextID = 0

        mutating func makeID() -> Int {
            nextID += 1
            return nextID
        }

        /// QoS 1 publishes waiting for their PUBACK.
        var unansweredPublishes: Int {
            reusedIDWaiters.isEmpty ? publishWaiters.count : publishWaiters.count + reusedIDWaiters.values.reduce(0) { $0 + $1.count }
        }

        /// The oldest waiter for `mid`, which its PUBACK answers; the next one with that id (`reusedIDWaiters`) takes
        /// its place.
        mutating func takePublishWaiter(_ mid: Int32) -> PublishWaiter? {
            guard let waiter = publishWaiters.removeValue(forKey: mid) else { return nil }
            if !reusedIDWaiters.isEmpty, var later = reusedIDWaiters.removeValue(forKey: mid) {
                publishWaiters[mid] = later.removeFirst()
                if !later.isEmpty { reusedIDWaiters[mid] = later }
            }
            return waiter
        }

        /// Every QoS 1 publish waiting for its PUBACK, taken out (to be failed).
        mutating func takeAllPublishWaiters() -> [PublishWaiter] {
            var waiters = Array(publishWaiters.values)
            for later in reusedIDWaiters.values { waiters += later }
            publishWaiters.removeAll()
            reusedIDWaiters.removeAll()
            return waiters
        }

        /// The answer libmosquitto reported for `mid` before its sender registered it, if any. Looked up only when
        /// there are such answers (rarely): even an empty dictionary hashes the key.
        mutating func takeEarlyPublishAck(_ mid: Int32) -> Int32? {
            earlyPublishAcks.isEmpty ? nil : earlyPublishAcks.removeValue(forKey: mid)
        }

        /// Called under the lock when a sender has registered; drops orphaned acks once nobody can claim them.
        mutating func endSend(_ sendsInProgress: borrowing Atomic<Int>) {
            if sendsInProgress.wrappingSubtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
                if !earlyPublishAcks.isEmpty { earlyPublishAcks.removeAll(keepingCapacity: true) }
                if !earlySubacks.isEmpty { earlySubacks.removeAll() }
                if !earlyUnsubacks.isEmpty { earlyUnsubacks.removeAll() }
            }
        }
    }

    let state = Mutex(State())
    /// Shared by every call into the handle from outside the network thread; taken alone for a fresh session.
    let session = SessionLock()
    /// False from a fresh session until its connection attempt is under way: a publish meanwhile is refused without
    /// reaching libmosquitto, which would send it unanswered once connected (after the caller was told it failed).
    let sessionConnecting = Atomic<Bool>(false)
    /// Set by the client: restarts the connection when the network thread gave up (see `networkLoopEnded`).
    let onNetworkThreadExit = Mutex<Hook?>(nil)

    /// A class box: taking a bare optional closure out of `Mutex.withLock` leaks its context (Swift 6.3).
    final class Hook: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    /// A class box, like `Hook`: what `MosquittoClient.handle(messages:events:)` installed.
    final class Handlers: Sendable {
        let message: @Sendable (MQTTMessage) -> Void
        let event: @Sendable (MQTTConnectionEvent) -> Void
        init(message: @escaping @Sendable (MQTTMessage) -> Void, event: @escaping @Sendable (MQTTConnectionEvent) -> Void) {
            self.message = message
            self.event = event
        }
    }
    /// Connections the broker accepted (CONNACK success): the network loop starts its backoff over after one.
    let acceptedConnections = Atomic<Int>(0)
    /// From the broker's CONNACK (success) until that connection ends: the network loop serves the connection
    /// with its own pass only then (see `NetworkLoop.pass`). Written and read on the network thread.
    let linkUp = Atomic<Bool>(false)
    /// True while the network thread has libmosquitto read the broker's packets: a publish callback then reports a
    /// PUBACK. At any other time it reports a QoS 0 publish written, which libmosquitto reports through the same
    /// callback, with an id from the same 16-bit counter as QoS 1 publishes: 65,535 publishes after a QoS 1 one still
    /// waiting for its PUBACK, a QoS 0 one has its id, so the id cannot tell them apart. (libmosquitto writes only on
    /// the network thread, `mosquitto_threaded_set`.) From the CONNACK on, reads and writes are separate calls
    /// (`mosquitto_loop_read`, `_write`); before it see `ambiguousPublishCallbacks`. Network thread only.
    let readingPackets = Atomic<Bool>(false)
    /// True while libmosquitto's own loop runs (`mosquitto_loop`, before the CONNACK), which both reads and writes: a
    /// publish callback there answers the publish waiting for its id if there is one (a mistake needs 65,535 publishes
    /// before one CONNACK); otherwise it is counted as a QoS 0 publish written, and parked like an early PUBACK too
    /// while a send is in progress (a QoS 1 publish made before the CONNACK may be answered in the CONNACK's read,
    /// before its sender registered it; then the count is one too low until the next fresh session, which is
    /// harmless). Network thread only.
    let ambiguousPublishCallbacks = Atomic<Bool>(false)
    /// QoS 0 publishes libmosquitto has queued and not yet written: one more for each it took, one less for each it
    /// reports written. Zeroed by each fresh session, whose `mosquitto_reinitialise` drops what was queued (publishes
    /// are shut out meanwhile).
    let unwrittenAtMostOnce = Atomic<Int>(0)
    /// `options.maxQueuedAtMostOnce`, at least 2 (room is offered below half of it).
    var atMostOnceLimit: Int { max(2, options.maxQueuedAtMostOnce) }
    /// The payload bytes of the large QoS 0 publishes (``largeAtMostOnceBytes`` or more) among them, which
    /// `state.unwrittenSizes` knows by id; with the same rules (a fresh session zeroes it, and so on).
    let unwrittenAtMostOnceBytes = Atomic<Int>(0)
    /// Large QoS 0 publishes being sent or unwritten: while there are none, a write callback looks nothing up.
    let largeAtMostOnce = Atomic<Int>(0)
    /// A QoS 0 payload this long or longer counts in bytes too: a camera frame of megabytes, not a reading. The count
    /// alone bounds the smaller ones (4,096 of under 2 KiB: less than 8 MiB).
    static let largeAtMostOnceBytes = 2_048
    /// `options.maxQueuedAtMostOnceBytes`, at least 2.
    var atMostOnceByteLimit: Int { max(2, options.maxQueuedAtMostOnceBytes) }
    /// Someone waits for `unwrittenAtMostOnce` and `unwrittenAtMostOnceBytes` to fall below half their limits
    /// (`MosquittoClient.wantRoomForAtMostOnce`); then `roomForAtMostOnce` runs, once.
    let roomForAtMostOnceWanted = Atomic<Bool>(false)
    let roomForAtMostOnce = Mutex<Hook?>(nil)
    /// How many publishes libmosquitto keeps unanswered at once on the current connection (set at its CONNACK; 0
    /// between connections, when its limit is not this one).
    let inflightLimit = Atomic<Int>(0)
    /// The PUBACKs the broker owes, about (the publishes registered and not answered, up to libmosquitto's limit: it
    /// holds those beyond it back), and how many have come so far. Read by the network thread before each wait.
    var pubacks: (owed: Int, answered: Int) {
        let (waiting, answered) = state.withLock { ($0.unansweredPublishes, $0.answeredPublishes) }
        return (min(waiting, inflightLimit.load(ordering: .relaxed)), answered)
    }
    /// Sends between `beginSend` and their registration (an atomic, so a publish takes the mutex only once).
    let sendsInProgress = Atomic<Int>(0)
    let logger: Logger
    let address: String
    /// The client's options: the network thread redraws the reconnect jitter from them.
    let options: MQTTClientOptions
    let messageContinuation: AsyncStream<MQTTMessage>.Continuation
    /// Set by `MosquittoClient.handle(messages:events:)`: take every incoming message and connection event where
    /// it happens, instead of the two continuations.
    let handlers = Mutex<Handlers?>(nil)
    let eventContinuation: AsyncStream<MQTTConnectionEvent>.Continuation

    init(
        logger: Logger,
        options: MQTTClientOptions,
        messageContinuation: AsyncStream<MQTTMessage>.Continuation,
        eventContinuation: AsyncStream<MQTTConnectionEvent>.Continuation
    ) {
        self.logger = logger
        self.options = options
        self.address = options.address
        self.messageContinuation = messageContinuation
        self.eventContinuation = eventContinuation
    }

    static func from(_ userdata: UnsafeMutableRawPointer?) -> ClientCore {
        Unmanaged<ClientCore>.fromOpaque(userdata!).takeUnretainedValue()
    }

    static var closedError: MosquittoError {
        MosquittoError(code: .closed, message: "the MQTT client was stopped")
    }

    var connectionLostError: MosquittoError {
        MosquittoError(
            code: .connectionLost,
            message: "the connection to the broker at \(address) ended before the broker answered; it may or may not have the message")
    }

    // MARK: Senders (any thread)

    /// Marks the start of a send whose ack may race the returned message id.
    func beginSend() {
        sendsInProgress.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }

    /// Registers the waiter for a QoS 1 publish that libmosquitto accepted as `mid`; returns its outcome instead when it
    /// has one already (its PUBACK came first, or the client stopped), for the caller to resume it with. Also returns
    /// whether it waits behind a full window: libmosquitto then sends it as a PUBACK makes room, in the network
    /// thread's pass, and waking that thread for it would be a pass for nothing (the spool's replay, whose window is
    /// larger than the broker's, woke it for nearly half its passes).
    func registerPublish(mid: Int32, waiter: PublishWaiter) -> (outcome: Result<Int32, MosquittoError>?, behindFullWindow: Bool) {
        state.withLock { state in
            // After the lookups below: ending the last send discards parked acks, ours included.
            defer { state.endSend(sendsInProgress) }
            if state.phase == .stopped { return (.failure(Self.closedError), false) }
            if let reason = state.takeEarlyPublishAck(mid) { return (.success(reason), false) }
            if let earlier = state.publishWaiters.updateValue(waiter, forKey: mid) {
                state.publishWaiters[mid] = earlier
                state.reusedIDWaiters[mid, default: []].append(waiter)
            }
            // At least the window's worth of the others are unanswered (one more, for a PUBACK whose waiter is being
            // removed right now): libmosquitto's window (this connection's, which `inflightLimit` is) is full, and
            // it releases this one, in order, in the pass that reads the PUBACK that makes room for it.
            let window = inflightLimit.load(ordering: .relaxed)
            return (nil, window > 0 && state.unansweredPublishes >= window + 2)
        }
    }

    /// Begins the send of a QoS 0 publish with a payload of `bytes`, after `beginSend`: a large one is announced
    /// before libmosquitto can write it, so that its write callback looks its id up.
    func beginQoS0Publish(bytes: Int) {
        guard bytes >= Self.largeAtMostOnceBytes else { return }
        largeAtMostOnce.wrappingAdd(1, ordering: .sequentiallyConsistent)
        state.withLock { $0.unwrittenSizes.beginSend() }
    }

    /// Ends the send of a QoS 0 publish (which has no answer to wait for; see `readingPackets`), counting it as
    /// unwritten if libmosquitto took it (as `mid`; nil if it did not), in bytes too if it is large.
    func finishQoS0Publish(mid: Int32?, bytes: Int) {
        if mid != nil { unwrittenAtMostOnce.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        let large = bytes >= Self.largeAtMostOnceBytes
        let unwrittenBytes = state.withLock { state in
            defer { state.endSend(sendsInProgress) }
            return large ? state.unwrittenSizes.endSend(mid: mid, bytes: bytes) : 0
        }
        if unwrittenBytes > 0 {
            unwrittenAtMostOnceBytes.wrappingAdd(unwrittenBytes, ordering: .sequentiallyConsistent)
        } else if large {
            largeAtMostOnce.wrappingSubtract(1, ordering: .sequentiallyConsistent)  // not taken, or written already
        }
    }

    /// Whether fewer QoS 0 publishes, and fewer of their bytes, than allowed (divided by `divisor`) wait unwritten.
    func atMostOnceBelowLimits(dividedBy divisor: Int = 1) -> Bool {
        unwrittenAtMostOnce.load(ordering: .sequentiallyConsistent) < atMostOnceLimit / divisor
            && unwrittenAtMostOnceBytes.load(ordering: .sequentiallyConsistent) < atMostOnceByteLimit / divisor
    }

    /// Runs the room hook if someone waits for it and fewer than half the allowed QoS 0 publishes and bytes are
    /// unwritten. Sequentially consistent, as the counters' changes and the wish's store: a waiter stores its wish
    /// and then reads the counters, the network thread changes a counter and then reads the wish, and one of them
    /// must see the other's write, or the wake-up is lost.
    func offerRoomForAtMostOnce() {
        guard roomForAtMostOnceWanted.load(ordering: .sequentiallyConsistent),
            atMostOnceBelowLimits(dividedBy: 2),
            roomForAtMostOnceWanted.exchange(false, ordering: .acquiringAndReleasing)
        else { return }
        roomForAtMostOnce.withLock { $0 }?.run()
    }

    /// libmosquitto wrote the QoS 0 publish `mid`.
    private func atMostOnceWritten(_ mid: Int32) {
        unwrittenAtMostOnce.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        // A large one's announcement came before libmosquitto had it (its mutex orders that before this callback).
        if largeAtMostOnce.load(ordering: .sequentiallyConsistent) > 0 {
            let bytes = state.withLock { $0.unwrittenSizes.written(mid) }
            if bytes > 0 {
                unwrittenAtMostOnceBytes.wrappingSubtract(bytes, ordering: .sequentiallyConsistent)
                largeAtMostOnce.wrappingSubtract(1, ordering: .sequentiallyConsistent)
            }
        }
        offerRoomForAtMostOnce()
    }

    /// A fresh session's `mosquitto_reinitialise` drops the QoS 0 publishes libmosquitto held (with the handle alone:
    /// no send is in progress).
    func forgetUnwrittenAtMostOnce() {
        unwrittenAtMostOnce.store(0, ordering: .sequentiallyConsistent)
        unwrittenAtMostOnceBytes.store(0, ordering: .sequentiallyConsistent)
        largeAtMostOnce.store(0, ordering: .sequentiallyConsistent)
        state.withLock { $0.unwrittenSizes.removeAll() }
    }

    /// Registers a subscription group the caller sent itself (`mid` nil when the send failed with `rc`).
    func registerSubscribe(groupID: Int, generation: Int, mid: Int32?, rc: MosquittoResultCode) {
        let outcome: (SubscribeContinuation?, Result<[Int32], MosquittoError>)? = state.withLock { state in
            // After the lookups below: ending the last send discards parked acks, ours included.
            defer { state.endSend(sendsInProgress) }
            guard let mid else {
                // Not connected after all: the next on_connect subscribes the group.
                if rc == .noConnection { return nil }
                let group = state.groups.removeValue(forKey: groupID)
                let filters = (group?.filters ?? []).joined(separator: ", ")
                return (group?.waiter, .failure(MosquittoError(rc: rc, context: "cannot subscribe to \(filters)")))
            }
            if let codes = state.earlySubacks.removeValue(forKey: mid) {
                guard let (waiter, _) = Self.resolveSubscription(groupID, codes: codes, in: &state) else { return nil }
                return (waiter, .success(codes))
            }
            // If the connection changed since the caller looked, on_connect has sent (or will send) the group again.
            if state.generation == generation, state.connected {
                state.subscribeMids[mid] = groupID
            }
            return nil
        }
        if let (waiter, result) = outcome { waiter?.resume(with: result) }
    }

    /// Registers an UNSUBSCRIBE the caller sent as `mid`.
    func registerUnsubscribe(mid: Int32, generation: Int, continuation: UnsubscribeContinuation) {
        let done: Bool = state.withLock { state in
            // After the lookups below: ending the last send discards parked acks, ours included.
            defer { state.endSend(sendsInProgress) }
            if state.earlyUnsubacks.remove(mid) != nil { return true }
            // Connection lost meanwhile: with a clean start the broker has forgotten the subscription anyway.
            if state.generation != generation || !state.connected || state.phase == .stopped { return true }
            state.unsubscribeWaiters[mid] = continuation
            return false
        }
        if done { continuation.resume() }
    }

    /// Ends a send that failed before anything was queued.
    func abandonSend() {
        state.withLock { $0.endSend(sendsInProgress) }
    }

    // MARK: Callbacks (network thread)

    func handlePublishAck(mid: Int32, reasonCode: Int32) {
        guard readingPackets.load(ordering: .relaxed) else {
            // Not reading the broker's packets: a QoS 0 publish was written, nothing was answered.
            atMostOnceWritten(mid)
            return
        }
        let mayBeWritten = ambiguousPublishCallbacks.load(ordering: .relaxed)
        let waiter: PublishWaiter? = state.withLock { state in
            if let waiter = state.takePublishWaiter(mid) {
                state.answeredPublishes += 1
                return waiter
            }
            if sendsInProgress.load(ordering: .sequentiallyConsistent) > 0 {
                state.earlyPublishAcks[mid] = reasonCode
                state.answeredPublishes += 1
            }
            return nil
        }
        if waiter == nil, mayBeWritten { atMostOnceWritten(mid) }
        waiter?.resume(with: .success(reasonCode))
    }

    func handleMessage(_ message: UnsafePointer<mosquitto_message>, properties: OpaquePointer?) {
        let raw = message.pointee
        let payload =
            raw.payloadlen > 0
            ? [UInt8](UnsafeRawBufferPointer(start: raw.payload, count: Int(raw.payloadlen))) : []
        let copied = MQTTMessage(
            topic: raw.topic.map { String(cString: $0) } ?? "",
            payload: payload,
            qos: raw.qos == 0 ? .atMostOnce : .atLeastOnce,
            retain: raw.retain,
            properties: properties == nil ? MQTTProperties() : MQTTProperties(copying: properties)
        )
        if let handlers = handlers.withLock({ $0 }) {
            handlers.message(copied)
        } else {
            messageContinuation.yield(copied)
        }
    }

    /// Hands a connection event to the handler, or else to `connectionEvents`.
    func report(_ event: MQTTConnectionEvent) {
        if let handlers = handlers.withLock({ $0 }) {
            handlers.event(event)
        } else {
            eventContinuation.yield(event)
        }
    }

    func handleSubscribeAck(mid: Int32, codes: [Int32]) {
        let resolved: (SubscribeContinuation?, [String])? = state.withLock { state in
            guard let groupID = state.subscribeMids.removeValue(forKey: mid) else {
                if sendsInProgress.load(ordering: .sequentiallyConsistent) > 0 { state.earlySubacks[mid] = codes }
                return nil
            }
            return Self.resolveSubscription(groupID, codes: codes, in: &state)
        }
        guard let (waiter, rejected) = resolved else { return }
        if let waiter {
            waiter.resume(returning: codes)
        } else if !rejected.isEmpty {
            logger.warning(
                "Broker refused resubscription; these filters are dropped",
                metadata: ["mqtt.filters": "\(rejected)", "mqtt.broker": "\(address)"]
            )
        }
    }

    /// Hands the SUBACK to the waiting caller and forgets the filters the broker refused.
    static func resolveSubscription(
        _ groupID: Int,
        codes: [Int32],
        in state: inout State
    ) -> (SubscribeContinuation?, [String])? {
        guard var group = state.groups[groupID] else { return nil }
        let waiter = group.waiter
        group.waiter = nil
        var kept: [String] = []
        var rejected: [String] = []
        for (index, filter) in group.filters.enumerated() {
            if index < codes.count, codes[index] >= 0x80 { rejected.append(filter) } else { kept.append(filter) }
        }
        group.filters = kept
        state.groups[groupID] = kept.isEmpty ? nil : group
        return (waiter, rejected)
    }

    func handleUnsubscribeAck(mid: Int32) {
        let waiter: UnsubscribeContinuation? = state.withLock { state in
            if let waiter = state.unsubscribeWaiters.removeValue(forKey: mid) { return waiter }
            if sendsInProgress.load(ordering: .sequentiallyConsistent) > 0 { state.earlyUnsubacks.insert(mid) }
            return nil
        }
        waiter?.resume()
    }

    /// `receiveMaximum`: the CONNACK's, nil when it has none.
    func handleConnect(handle: OpaquePointer, reasonCode: Int32, flags: Int32, receiveMaximum: Int?) {
        guard reasonCode == 0 else {
            let reason = MQTTReasonCode(reasonCode)
            let error = MosquittoError(
                code: .connectionRefused,
                message: "broker at \(address) refused the connection: \(reason)",
                reasonCode: reason
            )
            logger.warning("MQTT connection refused", metadata: ["mqtt.error": "\(error.message)"])
            failConnectWaiters(with: error)
            report(.disconnected(reason: error.message))
            return
        }
        acceptedConnections.add(1, ordering: .relaxed)
        linkUp.store(true, ordering: .relaxed)
        let (groups, waiters, inflightLimit) = state.withLock { state in
            state.connected = true
            state.generation += 1
            state.lastFailure = nil
            // libmosquitto's limit on publishes unanswered at once: the CONNACK's Receive Maximum, or else the one the
            // fresh session was configured with.
            let inflightLimit = receiveMaximum ?? options.sendMaximum
            self.inflightLimit.store(inflightLimit, ordering: .relaxed)
            let waiters = Array(state.connectWaiters.values)
            state.connectWaiters.removeAll()
            return (state.groups.sorted { $0.key < $1.key }, waiters, inflightLimit)
        }
        // Resubscribe from inside the callback: the SUBACKs are read by this same thread, so they cannot
        // arrive before the ids are recorded below.
        var sent: [(Int32, Int)] = []
        for (groupID, group) in groups {
            var mid: Int32 = 0
            let rc = Self.sendSubscribe(
                handle: handle, filters: group.filters, qos: group.qos, identifier: group.identifier,
                retainAsPublished: group.retainAsPublished, mid: &mid)
            if rc == .success {
                sent.append((mid, groupID))
            } else {
                logger.warning(
                    "Cannot resubscribe",
                    metadata: ["mqtt.filters": "\(group.filters)", "mqtt.error": "\(MosquittoError.describe(rc))"]
                )
            }
        }
        if !sent.isEmpty {
            state.withLock { state in
                for (mid, groupID) in sent { state.subscribeMids[mid] = groupID }
            }
        }
        let sessionPresent = flags & 1 != 0
        logger.info(
            "Connected to MQTT broker",
            metadata: [
                "mqtt.broker": "\(address)", "mqtt.sessionPresent": "\(sessionPresent)",
                "mqtt.resubscribed": "\(sent.count)", "mqtt.inflightLimit": "\(inflightLimit)",
            ]
        )
        for waiter in waiters { waiter.continuation.resume() }
        report(.connected(sessionPresent: sessionPresent, inflightLimit: inflightLimit))
    }

    /// `rc` is what libmosquitto 2.0.11 hands the disconnect callback: the broker's MQTT 5 reason code (>= 0x80)
    /// when it sent a DISCONNECT, 0 after the client's own, otherwise the libmosquitto error that broke the connection.
    func handleDisconnect(rc: Int32) {
        let reason: String
        let reasonCode: MQTTReasonCode?
        let resultCode: MosquittoResultCode?
        if rc == 0 {
            (reasonCode, resultCode) = (nil, nil)
            reason = "disconnected by the client"
        } else if rc >= 0x80 {
            (reasonCode, resultCode) = (MQTTReasonCode(rc), nil)
            reason = "broker closed the connection: \(MQTTReasonCode(rc))"
        } else {
            (reasonCode, resultCode) = (nil, MosquittoResultCode(rc))
            reason = MosquittoError.describe(MosquittoResultCode(rc))
        }
        linkUp.store(false, ordering: .relaxed)
        inflightLimit.store(0, ordering: .relaxed)
        let (unsubscribers, wasConnected, phase) = state.withLock { state in
            let wasConnected = state.connected
            state.connected = false
            state.generation += 1
            // SUBSCRIBEs in flight are lost with the connection; their groups are sent again on reconnect.
            state.subscribeMids.removeAll()
            // With a clean start the broker forgets the subscriptions anyway, so pending UNSUBSCRIBEs are done.
            let unsubscribers = Array(state.unsubscribeWaiters.values)
            state.unsubscribeWaiters.removeAll()
            return (unsubscribers, wasConnected, state.phase)
        }
        for waiter in unsubscribers { waiter.resume() }
        if wasConnected {
            if phase == .stopped {
                logger.debug("Disconnected from MQTT broker", metadata: ["mqtt.broker": "\(address)"])
            } else {
                logger.warning(
                    "Lost connection to MQTT broker; reconnecting",
                    metadata: ["mqtt.broker": "\(address)", "mqtt.reason": "\(reason)"]
                )
            }
        } else {
            logger.debug("MQTT connection attempt failed", metadata: ["mqtt.broker": "\(address)", "mqtt.reason": "\(reason)"])
            failConnectWaiters(
                with: MosquittoError(
                    code: .unreachable,
                    message: "cannot reach broker at \(address): \(reason)",
                    reasonCode: reasonCode,
                    resultCode: resultCode
                )
            )
        }
        report(.disconnected(reason: reason))
    }

    /// A fresh session starts (`MosquittoClient.startFreshSession`, holding the handle alone): the publishes of the
    /// last one, which libmosquitto is about to forget, are taken out to be failed, with what was parked for them.
    func takeSessionPublishes() -> [PublishWaiter] {
        state.withLock { state in
            let waiters = state.takeAllPublishWaiters()
            state.earlyPublishAcks.removeAll()
            return waiters
        }
    }

    /// The network loop returned without being asked to (an error after which it does not reconnect by itself:
    /// protocol, TLS, `EPROTO`...): unless the client stops, its retry task connects anew.
    func networkLoopEnded() {
        guard state.withLock({ $0.phase == .running }) else { return }
        onNetworkThreadExit.withLock { $0 }?.run()
    }

    /// Fails the `connect()` caller (fail-fast waiters only; `waitUntilConnected` keeps waiting).
    func failConnectWaiters(with error: MosquittoError) {
        let waiters: [ConnectWaiter] = state.withLock { state in
            // A refusal is followed by a disconnect; keep the more useful refusal.
            if error.code == .connectionRefused || state.lastFailure?.code != .connectionRefused {
                state.lastFailure = error
            }
            let failing = state.connectWaiters.filter { $0.value.failFast }
            for key in failing.keys { state.connectWaiters[key] = nil }
            return Array(failing.values)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
    }

    static func sendSubscribe(
        handle: OpaquePointer, filters: [String], qos: MQTTQoS, identifier: UInt32?, retainAsPublished: Bool, mid: inout Int32
    ) -> MosquittoResultCode {
        let cStrings = filters.map { strdup($0) }
        var properties: OpaquePointer?
        defer {
            for string in cStrings { free(string) }
            mosquitto_property_free_all(&properties)
        }
        if let identifier {
            mosquitto_property_add_varint(&properties, MQTTPropertyID.subscriptionIdentifier, identifier)
        }
        return cStrings.withUnsafeBufferPointer { buffer in
            MosquittoResultCode(
                mosquitto_subscribe_multiple(
                    handle, &mid, Int32(buffer.count), buffer.baseAddress, qos.rawValue,
                    retainAsPublished ? Int32(MQTT_SUB_OPT_RETAIN_AS_PUBLISHED.rawValue) : 0, properties)
            )
        }
    }

    static func sendUnsubscribe(handle: OpaquePointer, filters: [String], mid: inout Int32) -> MosquittoResultCode {
        let cStrings = filters.map { strdup($0) }
        defer { for string in cStrings { free(string) } }
        return cStrings.withUnsafeBufferPointer { buffer in
            MosquittoResultCode(mosquitto_unsubscribe_multiple(handle, &mid, Int32(buffer.count), buffer.baseAddress, nil))
        }
    }
}

extension ClientCore {
    /// Everything that waits on the client, taken out of the state by `stop()` to be failed outside the lock.
    struct Waiters {
        var publishes: [PublishWaiter]
        var subscribes: [SubscribeContinuation]
        var unsubscribes: [UnsubscribeContinuation]
        var connects: [CheckedContinuation<Void, any Error>]

        init(takingFrom state: inout State) {
            publishes = state.takeAllPublishWaiters()
            subscribes = state.groups.values.compactMap(\.waiter)
            unsubscribes = Array(state.unsubscribeWaiters.values)
            connects = state.connectWaiters.values.map(\.continuation)
            state.unsubscribeWaiters.removeAll()
            state.connectWaiters.removeAll()
            state.subscribeMids.removeAll()
            for key in state.groups.keys { state.groups[key]?.waiter = nil }
        }

        func fail(with error: MosquittoError) {
            for waiter in publishes { waiter.resume(with: .failure(error)) }
            for waiter in subscribes { waiter.resume(throwing: error) }
            for waiter in unsubscribes { waiter.resume(throwing: error) }
            for waiter in connects { waiter.resume(throwing: error) }
        }
    }
}
