import Dispatch
import GatehouseProtocol
import Logging
import Mosquitto
import Synchronization

/// Where every must-be-safe message goes: to the broker while it is connected, into a bounded in-memory
/// queue (with the sending devices paused) while the in-flight window is full, into the spool while the
/// broker cannot be reached. `OutboxState` makes every decision; this class performs them.
///
/// A message is safe, and its completion reports `.safe`, on the broker's PUBACK or once it is durably
/// spooled: nowhere else. The MQTT client answers a publish on the connection it went out on and never sends it
/// again: when that connection ends first, a live message goes to the spool, and the spool is rewound so that a
/// replayed one is read again.
///
/// With `writeAhead` (the embedded broker, which acknowledges before it saves) every message is also
/// written to the spool as it is published: it is safe once durable there, the spool keeps it for the
/// broker's unsaved window after its PUBACK, and the rewind when the broker connection is lost publishes again
/// what the broker may have lost (duplicates, never losses). When the spool cannot
/// take it (disk full), it is safe on the PUBACK alone, as with an external broker.
///
/// Spool appends (and the rewinds) are made while holding `state`; publishes, completions and
/// pausing devices happen after it is released. Why, and the lock order: "Locks and their order" in
/// docs/architecture.md.
final class Outbox: Sendable {
    let spool: Spool
    private let client: any BrokerPublisher
    private let writeAhead: Bool
    /// Refusals of spooled messages (nil in tests).
    private let metrics: GatewayMetrics?
    private let logger: Logger
    /// Replay runs here, one pass at a time.
    private let replayQueue = DispatchQueue(label: "gatehouse.replay")
    private let state: Mutex<OutboxState>
    /// Spooled entries the replay leaves out (acknowledged, not published); see `dropFromReplay`.
    private let superseded = Mutex<ClosureBox<SpoolEntry, Bool>?>(nil)

    init(client: any BrokerPublisher, spool: Spool, window: Int, writeAhead: Bool = false, metrics: GatewayMetrics? = nil, logger: Logger) {
        self.client = client
        self.spool = spool
        self.writeAhead = writeAhead
        self.metrics = metrics
        self.logger = logger
        self.state = Mutex(OutboxState(window: window, spoolIsEmpty: spool.isEmpty))
        spool.onDurable { [weak self] in self?.scheduleReplay() }
        client.onRoomForAtMostOnce { [weak self] in
            guard let self else { return }
            self.perform(self.state.withLock { $0.atMostOnceRoomMade() })
        }
        spool.onOpenedWithEntries { [weak self] in
            guard let self else { return }
            self.perform(self.state.withLock { $0.spoolOpenedWithEntries() })
        }
        keepReplaying()
    }

    /// Takes one must-be-safe message of `device`; `completion` says when it is safe, or why it was refused.
    func send(_ entry: SpoolEntry, device: String, source: (any PublishSource)?, completion: PublishCompletion?) {
        var refusal: PublishOutcome?
        decideSpooling { state in
            if writeAhead, state.publishesDirectly {
                switch submitWrittenAhead(entry, device: device, source: source, completion: completion, &state) {
                case .submitted(let effects): return effects
                case .refused(let outcome):
                    refusal = outcome
                    return OutboxState.Effects()
                case .notWritten: break
                }
            }
            return state.submit(entry, device: device, source: source, completion: completion)
        }
        if let refusal { completion?(refusal) }
    }

    /// Takes one best-effort message (never spooled; see `OutboxState`); `completion` runs on the PUBACK
    /// (QoS 1), once handed to libmosquitto (QoS 0), or with the refusal.
    func sendBestEffort(
        _ message: OutboundMessage, qos: MQTTQoS, device: String?, source: (any PublishSource)?, completion: PublishCompletion?
    ) {
        guard qos == .atMostOnce else { return queueBestEffort(message, qos: qos, device: device, source: source, completion: completion) }
        if let outcome = sendAtMostOnce(message, device: device, source: source, later: { completion }) { completion?(outcome) }
    }

    /// Takes one best-effort QoS 0 message. When the queues' rules allow (`OutboxState.mayPublishAtMostOnceNow`) and
    /// the client has room, it goes to libmosquitto at once from this thread, past the queues, and its outcome is
    /// returned: the client takes it or throws before `publish` returns, and nothing is allocated for it (a queued
    /// message's `Body`, a completion's context). Most of the gateway's QoS 0 telemetry goes this way. Otherwise it
    /// goes through the queues, returns nil, and the completion `later()` makes runs with the outcome.
    func sendAtMostOnce(
        _ message: OutboundMessage, device: String?, source: (any PublishSource)?, later: () -> PublishCompletion?
    ) -> PublishOutcome? {
        if state.withLock({ $0.mayPublishAtMostOnceNow(device: device ?? "") }) {
            if client.hasRoomForAtMostOnce {
                do {
                    try client.publish(
                        topic: message.topic, payload: message.payload, qos: .atMostOnce, retain: message.retain,
                        properties: message.properties, completion: { _ in })
                    return .safe
                } catch {
                    let error = Self.mosquittoError(error)
                    logger.warning("publish to \(message.topic) failed: \(error.message)")
                    return PublishOutcome(error)
                }
            }
            atMostOnceQueueFull()
        }
        queueBestEffort(message, qos: .atMostOnce, device: device, source: source, completion: later())
        return nil
    }

    /// The client holds as many unwritten QoS 0 publishes as it may (the broker takes them slower than they come):
    /// QoS 0 messages wait in the queues, pausing their devices, until it has room again.
    private func atMostOnceQueueFull() {
        state.withLock { $0.atMostOnceQueueFull() }
        client.wantRoomForAtMostOnce()
    }

    /// A best-effort message decided by `OutboxState.submitBestEffort`: published, queued behind others, or refused.
    private func queueBestEffort(
        _ message: OutboundMessage, qos: MQTTQoS, device: String?, source: (any PublishSource)?, completion: PublishCompletion?
    ) {
        let entry = SpoolEntry(topic: message.topic, payload: message.payload, retain: message.retain, receivedAt: 0)
        let submitted = OutboxState.Message(
            id: 0, entry: entry, device: device ?? "", completion: completion, isBestEffort: true, qos: qos,
            properties: message.properties)
        perform(state.withLock { $0.submitBestEffort(submitted, source: source) })
    }

    /// What became of a message to write ahead.
    private enum WriteAhead {
        /// Appended to the spool and submitted.
        case submitted(OutboxState.Effects)
        /// The spool is full: a message whose outcome someone waits for (a device's ack) is refused (`spool_full`;
        /// the device sends it again). A PUBACK alone would not make it safe: the embedded broker saves what it
        /// acknowledged only at its next autosave.
        case refused(PublishOutcome)
        /// The disk refused the append, or the spool is full and nobody waits for the outcome (the gateway's own
        /// document, answer or delta, which a refusal would lose): it goes the ordinary way, safe on its PUBACK.
        case notWritten
    }

    /// Write-ahead (see above), with `state` held like every append.
    private func submitWrittenAhead(
        _ entry: SpoolEntry, device: String, source: (any PublishSource)?, completion: PublishCompletion?, _ state: inout OutboxState
    ) -> WriteAhead {
        let ticket: Spool.Ticket?
        do throws(Spool.AppendError) {
            ticket = try spool.appendPublished(entry) { error in completion?(error.map(PublishOutcome.init) ?? .safe) }
        } catch .full where completion != nil {
            return .refused(PublishOutcome(Spool.AppendError.full))
        } catch {
            return .notWritten
        }
        let (spool, metrics, logger, topic) = (self.spool, self.metrics, self.logger, entry.topic)
        // Its PUBACK (or a refusal for good) lets the entry leave the spool after the broker's unsaved window; a
        // lost connection leaves it for the rewind.
        let settled: PublishCompletion = { outcome in
            switch outcome {
            case .refused(.brokerUnavailable, _): return
            case .refused(_, let reason):
                // Refused for good, after it was acked from disk: it is dropped. (One refused for now never gets
                // here: `publishLive` has it replayed from the spool.)
                logger.error("the broker refused a message; dropping it", metadata: ["topic": "\(topic)", "error": "\(reason)"])
                metrics?.spooledMessageRefused()
            case .safe: break
            }
            if let ticket { spool.acknowledge(ticket) }
        }
        return .submitted(state.submit(entry, device: device, source: source, completion: settled, spooled: true, ticket: ticket))
    }

    /// The broker accepted a connection: waiting messages go out, or the spool is replayed.
    func brokerConnected() {
        perform(state.withLock { $0.brokerConnected() })
    }

    /// The client is connected, the gateway not yet resynchronised: best-effort messages may go. libmosquitto
    /// lets `inflightLimit` QoS 1 publishes be unanswered at once on this connection: the live window is no larger.
    func brokerLinkUp(inflightLimit: Int) {
        perform(state.withLock { $0.brokerLinkUp(inflightLimit: inflightLimit) })
    }

    /// The broker is gone: what waits in memory goes to the spool, and so does everything after it.
    func brokerDisconnected() {
        decideSpooling { state in
            let effects = state.brokerDisconnected()
            // Replayed entries still unanswered are not sent again by the client, and with write-ahead what the broker
            // acknowledged may be lost with it: every entry still in the spool is read again.
            spool.rewind()
            return effects
        }
    }

    /// Sets the test for spooled entries the replay leaves out: documents the broker already has in a newer
    /// version, which replaying would roll back (the `Reconciler` decides).
    func dropFromReplay(when isSuperseded: @escaping @Sendable (SpoolEntry) -> Bool) {
        superseded.withLock { $0 = ClosureBox(isSuperseded) }
    }

    /// Messages waiting in memory, and devices paused because of them (status and tests).
    var backlog: (waiting: Int, pausedDevices: Int) {
        state.withLock { ($0.waitingCount, $0.pausedCount) }
    }

    /// True from losing the broker (or a spooled entry's refusal for now) until the replay has caught up.
    var isSpooling: Bool { state.withLock { $0.mode == .spooling } }

    /// True while the replay holds after a refusal for now, until it starts again (tests).
    var isHoldingReplay: Bool { state.withLock { $0.isReplayHeld } }

    /// Runs `decide` holding `state` and appends what it spools before letting go (appends are made holding it:
    /// "Locks and their order" in docs/architecture.md); then answers what the spool refused and performs the rest.
    private func decideSpooling(_ decide: (inout OutboxState) -> OutboxState.Effects) {
        var refused: [(PublishCompletion, PublishOutcome)] = []
        let effects = state.withLock { state in
            let effects = decide(&state)
            appendToSpool(effects.spool, refused: &refused)
            return effects
        }
        for (completion, outcome) in refused { completion(outcome) }
        perform(effects)
    }

    /// Called with `state` held (see the type's comment).
    private func appendToSpool(_ items: [(entry: SpoolEntry, completion: PublishCompletion?)], refused: inout [(PublishCompletion, PublishOutcome)]) {
        for (entry, completion) in items {
            do throws(Spool.AppendError) {
                try spool.append(entry) { error in completion?(error.map(PublishOutcome.init) ?? .safe) }
            } catch {
                if let completion { refused.append((completion, PublishOutcome(error))) }
            }
        }
    }

    private func perform(_ effects: OutboxState.Effects) {
        for message in effects.refused { message.answer(Self.refusal(of: message)) }
        for decision in effects.reading { decision.source.setReadingPaused(decision.paused, order: decision.order) }
        if effects.drain { drainPublishes() }
        if effects.replay { replayQueue.async { self.replay() } }
    }

    /// Hands the decided messages to libmosquitto in decision order. One thread at a time drains (the one
    /// whose effects said so); messages decided meanwhile on other threads are picked up by its next round,
    /// so two threads never race to publish a device's messages.
    private func drainPublishes() {
        var batch: [OutboxState.Message] = []
        var wantsRoomAfter = false
        while state.withLock({ $0.nextToPublish(into: &batch, wantsRoomAfter: &wantsRoomAfter) }) {
            for message in batch { publishLive(message) }
            batch.removeAll(keepingCapacity: true)
            if wantsRoomAfter { client.wantRoomForAtMostOnce() }
        }
    }

    private func publishLive(_ message: OutboxState.Message) {
        guard !message.isBestEffort else { return publishBestEffort(message) }
        publish(message.entry) { error in
            if !message.spooled, let error, Self.isConnectionLoss(error) {
                // Not sent again by the client: the spool takes it (a written-ahead one is there already, and the
                // rewind at the disconnect has it read again).
                return self.decideSpooling { $0.lostWithConnection(device: message.device) }
            }
            if message.spooled, let error, error.code == .publishRejected, !Self.isPermanent(error) {
                // Written ahead and acked from the spool, which still has it (its completion is not called, so the
                // entry stays): the replay goes again from it, as for a replayed entry refused so. Unless the
                // spool's reader reads it anyway (a rewind since made its ticket void, or it never skipped it).
                return self.holdReplay(refusedWith: error, topic: message.entry.topic) { state in
                    guard let ticket = message.ticket, self.spool.isCurrent(ticket) else {
                        return (state.published(id: message.id, device: message.device), nil)
                    }
                    return state.replayRefusedForNow(at: .now, replayed: false)
                }
            }
            let effects = self.state.withLock { $0.published(id: message.id, device: message.device) }
            message.answer(error.map(PublishOutcome.init) ?? .safe)
            self.perform(effects)
        }
    }

    private func publishBestEffort(_ message: OutboxState.Message) {
        // One that waited goes without asking the client (it was decided under the queues' rules): the next ones wait
        // once it has filled the client's queue.
        defer { if !message.usesWindow, !client.hasRoomForAtMostOnce { atMostOnceQueueFull() } }
        publish(message.entry, qos: message.qos, properties: message.properties) { error in
            let effects = message.usesWindow ? self.state.withLock { $0.bestEffortPublished() } : OutboxState.Effects()
            if let error { self.logger.warning("publish to \(message.entry.topic) failed: \(error.message)") }
            message.answer(error.map(PublishOutcome.init) ?? .safe)
            self.perform(effects)
        }
    }

    private static func refusal(of message: OutboxState.Message) -> PublishOutcome {
        .refused(.brokerUnavailable, "the broker is not connected, or messages spooled while it was away are still being delivered; retry later")
    }

    private func publish(
        _ entry: SpoolEntry, qos: MQTTQoS = .atLeastOnce, properties: MQTTProperties? = nil,
        completion: @escaping @Sendable (MosquittoError?) -> Void
    ) {
        do {
            try client.publish(
                topic: entry.topic, payload: entry.payload, qos: qos, retain: entry.retain,
                properties: properties ?? MQTTProperties(correlationData: entry.correlationData), completion: completion)
        } catch {
            completion(Self.mosquittoError(error))
        }
    }

    /// What the client threw, as the `MosquittoError` it always is.
    private static func mosquittoError(_ error: any Error) -> MosquittoError {
        error as? MosquittoError ?? MosquittoError(code: .other, message: "\(error)")
    }

    // MARK: Replay

    /// Starts a replay pass unless one is queued already; after each group commit, PUBACK and timer tick.
    func scheduleReplay() {
        if state.withLock({ $0.requestReplay() }) { replayQueue.async { self.replay() } }
    }

    /// A pass every second as well, in case a pass ended early (a segment dropped under the reader, a read
    /// error, live appends not yet durable); ends with the outbox's stop.
    private func keepReplaying() {
        replayQueue.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            guard let self, !self.state.withLock({ $0.isStopped }) else { return }
            self.scheduleReplay()
            self.keepReplaying()
        }
    }

    /// Hands spooled entries to the broker, oldest first, as long as the in-flight window has room; the
    /// window paces the replay. Each entry leaves the spool on its PUBACK. When the reader has caught up
    /// with the writer, live messages go straight to the broker again.
    private func replay() {
        state.withLock { $0.replayPassStarted() }
        while true {
            let room = state.withLock { $0.reserveReplay(limit: 512) }
            guard room > 0 else { return }
            let batch = spool.read(limit: room)
            if batch.count < room { state.withLock { $0.releaseReplayRoom(room - batch.count) } }
            if batch.isEmpty {
                perform(state.withLock { state in spool.isCaughtUp ? state.spoolCaughtUp() : OutboxState.Effects() })
                return
            }
            let isSuperseded = superseded.withLock { $0 }
            for (index, item) in batch.enumerated() {
                let isLeftOut = item.expired || isSuperseded?.call(item.entry) == true
                switch state.withLock({ $0.replayStep(for: item.entry, publishing: !isLeftOut) }) {
                case .hold:
                    // Held by a refusal meanwhile: the rest is read again after the restart's rewind.
                    state.withLock { $0.releaseReplayRoom(batch.count - index) }
                    return
                case .setAside:
                    logger.error("the broker closed the connection on a spooled message, sent alone, again and again; dropping it as refused",
                                 metadata: ["topic": "\(item.entry.topic)", "times": "\(ReplayProbe.lossesToRefuse)"])
                    metrics?.spooledMessageRefused()
                    spool.acknowledge(item.ticket)
                    perform(state.withLock { $0.replayFinished() })
                case .proceed where isLeftOut:
                    spool.acknowledge(item.ticket, expired: item.expired)
                    perform(state.withLock { $0.replayFinished() })
                case .proceed:
                    replayOne(item.entry, ticket: item.ticket)
                }
            }
        }
    }

    /// Publishes one spooled entry; it leaves the spool on its PUBACK, or when the broker refuses it for
    /// good. After a refusal that may pass (quota exceeded, unspecified error) the replay holds, and a second later
    /// (longer if the broker refuses again soon after, up to 30 s) starts again from the oldest unconfirmed entry
    /// (`restartReplay`). A live message written ahead and refused so is held the same way (`publishLive`).
    private func replayOne(_ entry: SpoolEntry, ticket: Spool.Ticket) {
        publish(entry) { error in
            if let error, error.code == .closed {
                // Stopped client: the entry stays in the spool for the next run.
                self.perform(self.state.withLock { $0.replayFinished() })
                return
            }
            if let error, Self.isConnectionLoss(error) {
                // Read again from the spool: after the rewind at the disconnect (`brokerDisconnected`), or, read after
                // that rewind (a pass that began before the disconnect), after one now, while the broker is away.
                self.perform(self.state.withLock { state in
                    if self.spool.isCurrent(ticket) { self.spool.rewind() }
                    return state.replayFinished()
                })
                return
            }
            if error != nil, !self.spool.isCurrent(ticket) {
                // The spool was rewound since: the entry is read and published again from there.
                self.perform(self.state.withLock { $0.replayFinished() })
                return
            }
            if let error, !Self.isPermanent(error) {
                return self.holdReplay(refusedWith: error, topic: entry.topic) { state in
                    // Again holding `state`: a restart (its rewind holds it too) may have come since the check above.
                    guard self.spool.isCurrent(ticket) else { return (state.replayFinished(), nil) }
                    return state.replayRefusedForNow(at: .now)
                }
            }
            if let error {
                self.logger.error("the broker refused a spooled message; dropping it", metadata: [
                    "topic": "\(entry.topic)", "error": "\(error.message)"])
                self.metrics?.spooledMessageRefused()
            }
            self.spool.acknowledge(ticket)
            self.perform(self.state.withLock { $0.replayFinished(answered: true) })
        }
    }

    /// A spooled entry (replayed, or written ahead) refused for a reason that may pass: the replay holds, as `decide`
    /// says, and the first refusal of a hold schedules the restart (`restartReplay`).
    private func holdReplay(
        refusedWith error: MosquittoError, topic: String,
        _ decide: (inout OutboxState) -> (effects: OutboxState.Effects, restartAfter: Duration?)
    ) {
        var restartAfter: Duration?
        decideSpooling { state in
            let refusal = decide(&state)
            restartAfter = refusal.restartAfter
            return refusal.effects
        }
        guard let restartAfter else { return }
        metrics?.replayHeld()
        logger.warning("the broker refused a spooled message for now; replaying again from it later", metadata: [
            "topic": "\(topic)", "error": "\(error.message)", "retry_in": "\(restartAfter)"])
        // Whole seconds (`OutboxState.shortestHold` doubled).
        replayQueue.asyncAfter(deadline: .now() + .seconds(Int(restartAfter.components.seconds))) { self.restartReplay() }
    }

    /// After a refusal that may pass: every entry still in the spool is read again, oldest first, the refused one
    /// with what came after it (the rewind is made holding `state`, like every append).
    private func restartReplay() {
        perform(state.withLock { state in
            spool.rewind()
            return state.replayRestarts(at: .now)
        })
    }

    /// The broker may or may not have the message, and the client does not send it again: no connection when it was
    /// published, or the connection ended before the PUBACK.
    private static func isConnectionLoss(_ error: MosquittoError) -> Bool {
        error.code == .connectionLost || error.code == .notConnected
    }

    /// PUBACK reasons a retry cannot change (the Mosquitto module decides which: `isPermanentRejection`).
    /// Errors before anything was queued (e.g. oversize) are permanent too.
    private static func isPermanent(_ error: MosquittoError) -> Bool {
        guard error.code == .publishRejected, error.reasonCode != nil else { return !isConnectionLoss(error) }
        return error.isPermanentRejection
    }

    // MARK: Shutdown

    /// Stops replaying, waits up to `grace` for the PUBACKs in flight (and the messages waiting for room),
    /// spools what is still unconfirmed (their devices will also resend it) and closes the spool. Returns
    /// how many were spooled.
    func stop(grace: Duration) async -> Int {
        state.withLock { $0.stop() }
        let deadline = ContinuousClock.now + grace
        while state.withLock({ $0.isBusy }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        var refused: [(PublishCompletion, PublishOutcome)] = []
        let leftovers = state.withLock { state in
            let leftovers = state.takeLeftovers()
            // Under the lock, like every append: a message submitted after `stop()` lands behind these.
            appendToSpool(leftovers.spool, refused: &refused)
            for message in leftovers.refused { refused.append((message.answeringCopy, Self.refusal(of: message))) }
            return leftovers.spool.count
        }
        for (completion, outcome) in refused { completion(outcome) }
        spool.shutDown()
        return leftovers
    }
}
