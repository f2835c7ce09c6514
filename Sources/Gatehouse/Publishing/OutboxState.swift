import Mosquitto
import NIOCore
import Synchronization

/// Every decision of the outbox, with no I/O and no locks: which must-be-safe message goes to the broker
/// now, which waits in memory for room in the in-flight window, which goes to the spool, and which
/// device to pause or resume. `Outbox` keeps it behind its lock and performs the returned `Effects`
/// after releasing it (except spool appends, see `Outbox`).
///
/// The rules:
/// - While the broker is connected and nothing is spooled (`direct`), a message is published at once if
///   the window (`mqtt.max_inflight`, or the broker's Receive Maximum if lower) has room and nothing waits;
///   otherwise it waits in memory, and the device whose message reaches a high-water mark (the window's worth of
///   messages, or 8 MiB of payloads) is paused. PUBACKs free the window, move waiting messages out in order, and at
///   half of both marks every paused device is resumed. Steady overload therefore writes nothing to disk and
///   creates no duplicates.
/// - When the broker is lost (`spooling`), what waits in memory and every later message goes to the spool,
///   until the replay has read everything back with the broker connected again. If the connection ended with
///   publishes unanswered, the replay's window starts at one again (`ReplayProbe`). So too when the broker refuses a
///   spooled entry (replayed, or a live one written ahead) for a reason that may pass: the replay starts again from
///   the oldest unconfirmed entry.
/// - A device's messages still waiting for their PUBACK are copied into the spool ahead of that device's
///   first spooled message: should the gateway stop before they are confirmed, the spool still holds them
///   in order. A live message whose connection ended before its PUBACK goes to the spool the same way, with its
///   device's others (the MQTT client does not send it again). Each is answered once: by its PUBACK, or once its
///   copy is durable. Duplicates come only after a broker fault: from these copies, and from publishes the broker
///   took before their connection ended without the PUBACK reaching the gateway.
/// - Best-effort messages are never spooled. At QoS 1 they share the window with everything else, so no
///   more than `maxWindow` publishes ever wait for a PUBACK (libmosquitto's 16-bit message ids, which QoS 0
///   publishes take too, may still come round to a waiting one: `ClientCore` tells such publishes apart). While
///   the broker is away they are refused at once, not queued in libmosquitto to
///   surface stale after the reconnect: the gateway republishes what it owns then. A device's QoS 0
///   message waits behind that device's earlier ones, and is refused while messages are spooled, so it
///   never overtakes them. Nor does it overtake those libmosquitto holds back (beyond the broker's Receive
///   Maximum): a QoS 0 message goes while fewer than the window's publishes await a PUBACK. libmosquitto queues
///   QoS 0 publishes without limit, so while the client holds `maxQueuedAtMostOnce` of them, or
///   `maxQueuedAtMostOnceBytes` of large ones, unwritten (a broker slower than the devices) QoS 0 messages wait here
///   too, and pause their devices like must-be-safe ones.
/// - A message `spooled` already (write-ahead, for the embedded broker: the spool keeps it until the broker
///   has saved it, and the spool's rewind publishes it again after a broker fault) is neither copied nor
///   spooled again; when the broker is lost before it went out, it is simply forgotten here.
struct OutboxState {
    enum Mode: Equatable { case direct, spooling }

    /// A message of `device` (the order key; empty for the gateway's own best-effort messages).
    ///
    /// A message moves through several queues here (waiting, unconfirmed, to publish), so what it carries sits in
    /// one shared `Body`: a copy of the message is its id and one reference, not a retain and release of each of
    /// the dozen references inside (in perf, those copies and their destroys were several per cent of the gateway's
    /// samples on the QoS 1 flow).
    struct Message {
        var id: UInt64
        let body: Body

        final class Body: Sendable {
            let entry: SpoolEntry
            let device: String
            let completion: PublishCompletion?
            let isBestEffort: Bool
            let qos: MQTTQoS
            let properties: MQTTProperties
            let spooled: Bool
            let ticket: Spool.Ticket?
            /// Set by the first `answer`: a message copied to the spool is answered by its PUBACK or by its copy's
            /// append, whichever comes first, and only by that one.
            private let answered = Atomic<Bool>(false)

            init(entry: SpoolEntry, device: String, completion: PublishCompletion?, isBestEffort: Bool, qos: MQTTQoS,
                 properties: MQTTProperties, spooled: Bool, ticket: Spool.Ticket?) {
                self.entry = entry
                self.device = device
                self.completion = completion
                self.isBestEffort = isBestEffort
                self.qos = qos
                self.properties = properties
                self.spooled = spooled
                self.ticket = ticket
            }

            /// Runs the completion with `outcome`, unless it ran already.
            @Sendable func answer(_ outcome: PublishOutcome) {
                guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
                completion?(outcome)
            }
        }

        init(id: UInt64, entry: SpoolEntry, device: String, completion: PublishCompletion? = nil, isBestEffort: Bool = false,
             qos: MQTTQoS = .atLeastOnce, properties: MQTTProperties = MQTTProperties(), spooled: Bool = false,
             ticket: Spool.Ticket? = nil) {
            self.id = id
            self.body = Body(entry: entry, device: device, completion: completion, isBestEffort: isBestEffort, qos: qos,
                             properties: properties, spooled: spooled, ticket: ticket)
        }

        var entry: SpoolEntry { body.entry }
        var device: String { body.device }
        /// Answers the message's submitter once (see `Body.answer`).
        func answer(_ outcome: PublishOutcome) { body.answer(outcome) }
        /// What a copy of the message in the spool answers it with.
        var answeringCopy: PublishCompletion { body.answer }
        /// Best effort: never spooled, refused while the broker is away.
        var isBestEffort: Bool { body.isBestEffort }
        var qos: MQTTQoS { body.qos }
        /// A best-effort message's MQTT 5 properties (a spooled one keeps only its Correlation Data).
        var properties: MQTTProperties { body.properties }
        /// Whether it holds room in the window until its PUBACK.
        var usesWindow: Bool { body.qos != .atMostOnce }
        /// Already in the spool (write-ahead): never appended again.
        var spooled: Bool { body.spooled }
        /// Written ahead: the spool's ticket, which its reader skips while it is current (nil: read like any other).
        var ticket: Spool.Ticket? { body.ticket }
    }

    /// A pause or resume of a source. `order` grows with every such decision, so a source that hears of
    /// two decisions out of order (they are delivered after the lock is released) keeps the later one.
    struct ReadingDecision {
        var source: any PublishSource
        var paused: Bool
        var order: UInt64
    }

    /// What the caller does with the lock released.
    struct Effects {
        /// Messages were queued for publishing and no other thread is publishing: this caller drains
        /// `nextToPublish(into:)` until it is empty, so messages reach the broker in the order decided.
        var drain = false
        /// Append to the spool, in this order; a copy of an unconfirmed message answers it once (`Message.answer`).
        var spool: [(entry: SpoolEntry, completion: PublishCompletion?)] = []
        var reading: [ReadingDecision] = []
        /// Start a replay pass on the replay queue.
        var replay = false
        /// Best-effort messages refused (the broker is away, or a QoS 0 message would overtake spooled ones).
        var refused: [Message] = []
    }

    /// QoS 1 publishes allowed to wait for a PUBACK at once while publishing live: `maxWindow`, or libmosquitto's
    /// limit for the connection (the broker's Receive Maximum) when that is lower (`brokerLinkUp`). libmosquitto holds
    /// back the QoS 1 publishes beyond its limit but writes a QoS 0 one at once, so a device's QoS 0 message would
    /// overtake its earlier QoS 1 ones; within this window it holds none back.
    private(set) var window: Int
    /// `mqtt.max_inflight`: the window of the spool's replay. It may fill libmosquitto's queue beyond the broker's
    /// Receive Maximum, since no device's message is published live while the spool is replayed (QoS 0 ones are
    /// refused): with the replay paced by a window of 20, each PUBACK cost a pass on the replay queue, and a
    /// replayed message a quarter more CPU (docs/benchmarks.md).
    let maxWindow: Int
    /// Waiting messages, or their payload bytes, at which the submitting source is paused; resumed once both are at
    /// half or below.
    let highWater: Int
    let highWaterBytes: Int
    private(set) var mode: Mode
    private(set) var inFlight = 0
    /// The outbox may publish must-be-safe messages and replay (after the gateway resynchronised with the broker).
    private var connected = false
    /// The client is connected: best-effort messages may go (the bridge state before the resynchronisation).
    private var linkUp = false
    private var stopped = false
    private var nextID: UInt64 = 0
    private var waiting = WaitingMessages()
    /// Live messages handed to the broker, neither confirmed nor copied to the spool, by device, oldest first. A copy
    /// in the spool answers the message when durable, unless its PUBACK came first (`Message.answer`).
    private var unconfirmed: [String: CircularBuffer<Message>] = [:]
    private var paused: [ObjectIdentifier: any PublishSource] = [:]
    private var readingDecisions: UInt64 = 0
    private var replayScheduled = false
    /// A spooled entry (replayed, or written ahead) was refused for a reason that may pass: no pass and no catch-up
    /// until the replay starts again from it (`replayRestarts`).
    private(set) var isReplayHeld = false
    /// The last restart after a hold, and the wait before it: a broker that refuses again soon after a restart makes
    /// the next wait twice as long (up to `longestHold`), so that it is not sent the whole window again every second.
    private var lastRestart: ContinuousClock.Instant?
    private var holdWait = Self.shortestHold
    static let shortestHold = Duration.seconds(1)
    static let longestHold = Duration.seconds(30)
    /// Narrows the replay's window after a connection ended with publishes unanswered, and finds a spooled message
    /// the broker closes the connection on.
    private var probe = ReplayProbe()
    /// Replayed entries reserved or awaiting their answer: the part of `inFlight` the probe's window limits (best-effort
    /// publishes of the gateway may go beside them).
    private var replaying = 0
    /// False while the client's queue of unwritten QoS 0 publishes is full (a broker slower than the devices): QoS 0
    /// messages wait here meanwhile, pausing their devices as must-be-safe ones do, until it has room again.
    private(set) var atMostOnceRoom = true
    /// QoS 0 payload bytes one refill releases to the client at most (and one message more). The client offers room
    /// once less than half its 8 MiB of large payloads is unwritten (`maxQueuedAtMostOnceBytes`), so a release of
    /// the other half keeps it within that; the whole waiting queue (up to `highWaterBytes`) could take it to 12 MiB.
    static let atMostOnceReleaseBytes = 4 << 20
    /// Decided for publishing, not yet handed to the broker; `draining` while some thread hands them over.
    private var toPublish: [Message] = []
    private var draining = false
    /// A release was cut at `atMostOnceReleaseBytes`: the drainer asks the client for room once it has handed over
    /// `toPublish` as it is now (asked before, the client would still have room, and the next release would follow at
    /// once). Whichever thread drains, since it may not be the one that released them.
    private var wantsRoomAfterHandover = false

    init(window: Int, spoolIsEmpty: Bool, highWaterBytes: Int = 8 << 20) {
        self.window = max(1, window)
        self.maxWindow = self.window
        self.highWater = max(2, window)
        self.highWaterBytes = max(2, highWaterBytes)
        self.mode = spoolIsEmpty ? .direct : .spooling
    }

    /// Messages waiting in memory for room in the window.
    var waitingCount: Int { waiting.count }

    /// Sources paused now.
    var pausedCount: Int { paused.count }

    /// True while a live or replayed message waits for its PUBACK, or one waits for room.
    var isBusy: Bool { inFlight > 0 || !waiting.isEmpty }

    var isStopped: Bool { stopped }

    /// True when a message submitted now goes to the broker (at once or after waiting), not to the spool.
    var publishesDirectly: Bool { mode == .direct && connected && !stopped }

    // MARK: Messages

    /// One must-be-safe message of `device`; `spooled` when the caller wrote it ahead to the spool (only while
    /// `publishesDirectly`), with the spool's `ticket`.
    mutating func submit(
        _ entry: SpoolEntry, device: String, source: (any PublishSource)?, completion: PublishCompletion?, spooled: Bool = false,
        ticket: Spool.Ticket? = nil
    ) -> Effects {
        var effects = Effects()
        guard publishesDirectly else {
            enterSpooling(&effects)
            if !spooled { spool(entry, device: device, completion: completion, into: &effects) }
            return effects
        }
        let message = Message(id: nextID, entry: entry, device: device, completion: completion, spooled: spooled, ticket: ticket)
        nextID &+= 1
        if waiting.isEmpty, mayStart(message) {
            start(message, into: &effects)
        } else {
            wait(message, source: source, into: &effects)
        }
        return effects
    }

    /// Queues a message for room in the window; the source whose message reaches a high-water mark is paused.
    private mutating func wait(_ message: Message, source: (any PublishSource)?, into effects: inout Effects) {
        waiting.append(message)
        let full = waiting.count >= highWater || waiting.bytes >= highWaterBytes
        if full, let source, paused.updateValue(source, forKey: ObjectIdentifier(source)) == nil {
            decideReading(source, paused: true, into: &effects)
        }
    }

    /// One best-effort message (see the rules above; made with `isBestEffort`); `message.id` is assigned here.
    mutating func submitBestEffort(_ message: Message, source: (any PublishSource)?) -> Effects {
        precondition(message.isBestEffort, "a best-effort message is made so")
        var effects = Effects()
        var message = message
        guard message.qos == .atMostOnce ? !refusesAtMostOnce(device: message.device) : linkUp else {
            effects.refused.append(message)
            return effects
        }
        message.id = nextID
        nextID &+= 1
        if waiting.isEmpty, mayStart(message) {
            start(message, into: &effects)
        } else {
            wait(message, source: source, into: &effects)
        }
        return effects
    }

    /// True when a QoS 0 message of `device` (empty: the gateway's own) may be handed to libmosquitto at once by the
    /// caller, neither queued nor refused: `submitBestEffort` would start it, and no other thread is handing messages
    /// over (a drain's batch may hold the device's earlier ones). Nothing the device sent before is then between it
    /// and libmosquitto, and its later messages come from its own thread, after this one. (A message another thread
    /// decides meanwhile for the device, such as its desired-state delta, may reach libmosquitto first: decided
    /// concurrently, the two had no order to keep.) Nothing changes here;
    /// `mutating` only so that the lock hands it the state in place (called non-mutating, the whole state was copied
    /// and destroyed each time: 2 % of the samples of the QoS 0 flow).
    mutating func mayPublishAtMostOnceNow(device: String) -> Bool {
        !refusesAtMostOnce(device: device) && waiting.isEmpty && mayStartAtMostOnce && !draining
    }

    /// A QoS 0 message of `device` is refused: the broker is away, or it would overtake the device's spooled ones.
    private func refusesAtMostOnce(device: String) -> Bool {
        !linkUp || (mode == .spooling && !device.isEmpty)
    }

    /// The client's queue of unwritten QoS 0 publishes is full: QoS 0 messages wait until `atMostOnceRoomMade`.
    mutating func atMostOnceQueueFull() {
        atMostOnceRoom = false
    }

    /// The client's queue of unwritten QoS 0 publishes has room again: waiting messages go.
    mutating func atMostOnceRoomMade() -> Effects {
        atMostOnceRoom = true
        return refill()
    }

    /// The broker answered a best-effort QoS 1 publish: its room in the window is free.
    mutating func bestEffortPublished() -> Effects {
        inFlight -= 1
        return refill()
    }

    /// The broker answered a live publish (PUBACK, refusal, or the client stopped).
    mutating func published(id: UInt64, device: String) -> Effects {
        inFlight -= 1
        // Changed in place: a copy taken out of the dictionary would copy the whole list on every PUBACK.
        if let slot = unconfirmed.index(forKey: device) {
            if unconfirmed.values[slot].first?.id == id {
                unconfirmed.values[slot].removeFirst()
            } else if let index = unconfirmed.values[slot].firstIndex(where: { $0.id == id }) {
                unconfirmed.values[slot].remove(at: index)
            }
            if unconfirmed.values[slot].isEmpty { unconfirmed.remove(at: slot) }
        }
        return refill()
    }

    /// The connection a live message went out on ended before the broker answered it (or there was none): it goes to
    /// the spool with the rest of its device's unconfirmed messages, in order, unless a later message of that device
    /// took them there already.
    mutating func lostWithConnection(device: String) -> Effects {
        inFlight -= 1
        var effects = Effects()
        enterSpooling(&effects)
        for message in unconfirmed.removeValue(forKey: device) ?? [] { effects.spool.append((message.entry, message.answeringCopy)) }
        refill(into: &effects)
        return effects
    }

    // MARK: Broker connection

    /// The client is connected, and libmosquitto lets `inflightLimit` QoS 1 publishes be unanswered at once (the
    /// broker's Receive Maximum); must-be-safe messages keep going to the spool until `brokerConnected`.
    mutating func brokerLinkUp(inflightLimit: Int) -> Effects {
        window = max(1, min(maxWindow, inflightLimit))
        linkUp = true
        atMostOnceRoom = true  // a new session: the client's queue starts empty
        return refill()
    }

    mutating func brokerConnected() -> Effects {
        connected = true
        linkUp = true
        return refill()
    }

    mutating func brokerDisconnected(at now: ContinuousClock.Instant = .now) -> Effects {
        probe.connectionLost(unanswered: inFlight, at: now)
        connected = false
        linkUp = false
        var effects = Effects()
        enterSpooling(&effects)
        // Spooling already: only best-effort messages wait, and those are refused while the broker is away.
        while let message = waiting.popFirst() { effects.refused.append(message) }
        return effects
    }

    /// A spool that was off at start opened later holding an earlier run's entries: they go out before
    /// anything new.
    mutating func spoolOpenedWithEntries() -> Effects {
        var effects = Effects()
        enterSpooling(&effects)
        effects.replay = requestReplay()
        return effects
    }

    // MARK: Replay

    /// Claims a replay pass (after a group commit, a timer tick); false when one is scheduled already or
    /// there is nothing to replay now.
    mutating func requestReplay() -> Bool {
        guard mode == .spooling, connected, !stopped, !replayScheduled, !isReplayHeld else { return false }
        replayScheduled = true
        return true
    }

    /// The scheduled pass has started: later requests schedule another.
    mutating func replayPassStarted() {
        replayScheduled = false
    }

    /// Reserves room in the window (narrower while `probe` says so) for up to `limit` spooled entries; returns how many.
    mutating func reserveReplay(limit: Int) -> Int {
        guard mode == .spooling, connected, !stopped, !isReplayHeld else { return 0 }
        let room = max(0, min(limit, maxWindow - inFlight, (probe.window ?? maxWindow) - replaying))
        inFlight += room
        replaying += room
        return room
    }

    /// What the replay does with an entry it read: `hold` (the replay holds: leave the rest to the restart), `setAside`
    /// (the broker closed the connection on it, alone, time and again: see `ReplayProbe`), or `proceed` (publish it,
    /// or leave it out for a reason of the caller's: expired, superseded).
    enum ReplayStep { case proceed, hold, setAside }

    /// Called for each entry a pass read; `publishing` when the caller publishes it if told to proceed.
    mutating func replayStep(for entry: SpoolEntry, publishing: Bool, at now: ContinuousClock.Instant = .now) -> ReplayStep {
        if isReplayHeld { return .hold }
        guard publishing else { return .proceed }
        if probe.setsAside(entry) { return .setAside }
        probe.publishing(entry, at: now)
        return .proceed
    }

    /// A replayed entry is done (confirmed, dropped or expired; `answered` when by the broker): its room goes to the
    /// next one.
    mutating func replayFinished(answered: Bool = false) -> Effects {
        inFlight -= 1
        replaying -= 1
        if answered { probe.answered(fullWindow: maxWindow) }
        return refill()
    }

    /// The broker refused a replayed entry for a reason that may pass (quota exceeded, unspecified error). Retried
    /// on its own, it would reach the broker after the entries read after it, and after the catch-up after the
    /// device's live messages: the replay holds (its room is free) until the caller rewinds the spool and calls
    /// `replayRestarts`, so that every unconfirmed entry, the refused one among them, goes again in order
    /// (duplicates, not losses). After the catch-up (the entry was still in flight then) live messages go to the
    /// spool again, behind it, with copies of those not yet confirmed (whichever device the refused entry was of).
    /// A live message written ahead (the embedded broker) and refused so is handled the same way: acked from the
    /// spool, it is still there, uses the window as a replayed entry does, and is not in `unconfirmed`.
    /// Returns how long to hold for the first refusal of a hold (only that caller schedules the restart), nil for the
    /// others.
    mutating func replayRefusedForNow(at now: ContinuousClock.Instant, replayed: Bool = true) -> (effects: Effects, restartAfter: Duration?) {
        inFlight -= 1
        if replayed { replaying -= 1 }
        probe.answered(fullWindow: maxWindow)
        var restartAfter: Duration?
        if !isReplayHeld {
            let refusedSoonAfterRestart = lastRestart.map { now - $0 < holdWait * 2 } ?? false
            holdWait = refusedSoonAfterRestart ? min(holdWait * 2, Self.longestHold) : Self.shortestHold
            restartAfter = holdWait
        }
        isReplayHeld = true
        var effects = Effects()
        if mode == .direct {
            for messages in unconfirmed.values { effects.spool += messages.map { ($0.entry, $0.answeringCopy) } }
            unconfirmed.removeAll()
            enterSpooling(&effects)  // before the refill: the freed room must not take a waiting live message out
        }
        refill(into: &effects)
        return (effects, restartAfter)
    }

    /// The spool was rewound after `replayRefusedForNow`: the replay goes on from its oldest unconfirmed entry.
    mutating func replayRestarts(at now: ContinuousClock.Instant) -> Effects {
        isReplayHeld = false
        lastRestart = now
        return refill()
    }

    /// Gives back reserved room that a pass did not use. No new pass is requested: the next group commit,
    /// PUBACK or timer tick starts one (requesting one here would spin while nothing is readable).
    mutating func releaseReplayRoom(_ count: Int) {
        inFlight -= count
        replaying -= count
    }

    /// The spool has nothing left to read (checked under the same lock as the appends): live messages go
    /// straight to the broker again. The replayed entries still in flight were handed to libmosquitto
    /// first, so they reach the broker first.
    mutating func spoolCaughtUp() -> Effects {
        guard mode == .spooling, connected, !isReplayHeld else { return Effects() }
        mode = .direct
        probe.caughtUp()
        return refill()
    }

    // MARK: Shutdown

    /// No more replay; new messages go to the spool.
    mutating func stop() {
        stopped = true
    }

    /// At the end of the shutdown grace: the live messages not confirmed and those still waiting, oldest
    /// first, for the spool (their devices also hold them and resend them after reconnecting).
    mutating func takeLeftovers() -> (spool: [(entry: SpoolEntry, completion: PublishCompletion?)], refused: [Message]) {
        let published = unconfirmed.values.flatMap { $0 }.map { (message: $0, completion: $0.answeringCopy) }
        let waited = waiting.takeAll().filter { !$0.spooled }.map { (message: $0, completion: $0.answeringCopy) }
        let left = (published + waited).sorted { $0.message.id < $1.message.id }
        unconfirmed = [:]
        let spool = left.filter { !$0.message.isBestEffort }.map { ($0.message.entry, Optional($0.completion)) }
        return (spool, left.map(\.message).filter(\.isBestEffort))
    }

    // MARK: Publishing in order

    /// Moves the messages to hand to the broker now, in decision order, into `batch` (emptied by the drainer); false (and
    /// the drain over) when none are left. `wantsRoomAfter`: once they are handed over, the drainer asks the client for
    /// room for QoS 0 (`MosquittoClient.wantRoomForAtMostOnce`), the rest of a release waiting for it.
    mutating func nextToPublish(into batch: inout [Message], wantsRoomAfter: inout Bool) -> Bool {
        precondition(batch.isEmpty, "the drainer empties its batch (outside the lock) before taking the next")
        // Swapped whole, not copied out: a copy would retain and release every field of every message. The storage
        // goes back and forth, so a PUBACK that releases one message does not allocate a new array for it.
        swap(&batch, &toPublish)
        wantsRoomAfter = wantsRoomAfterHandover
        wantsRoomAfterHandover = false
        if batch.isEmpty { draining = false }
        return !batch.isEmpty
    }

    // MARK: Internals

    private mutating func start(_ message: Message, into effects: inout Effects) {
        if message.usesWindow { inFlight += 1 }
        if !message.isBestEffort, !message.spooled {
            unconfirmed[message.device, default: []].append(message)
        }
        toPublish.append(message)
        if !draining {
            draining = true
            effects.drain = true
        }
    }

    private mutating func decideReading(_ source: any PublishSource, paused: Bool, into effects: inout Effects) {
        readingDecisions += 1
        effects.reading.append(ReadingDecision(source: source, paused: paused, order: readingDecisions))
    }

    /// Room freed or the broker is back: waiting messages go out, paused sources resume below half the
    /// high-water mark, a spool replay continues.
    private mutating func refill() -> Effects {
        var effects = Effects()
        refill(into: &effects)
        return effects
    }

    private mutating func refill(into effects: inout Effects) {
        switch mode {
        case .direct where connected:
            startWaiting(&effects)
            if waiting.count <= highWater / 2, waiting.bytes <= highWaterBytes / 2 { resumeAll(&effects) }
        case .direct, .spooling:
            // Only best-effort messages wait here; they share the window with the replay.
            if linkUp { startWaiting(&effects) }
            if mode == .spooling { effects.replay = requestReplay() }
        }
    }

    /// Whether `message` (a best-effort one, or the first that waits) may go to libmosquitto now. A QoS 1 one needs
    /// room in the window: the replay's while spooling, the live one otherwise. A QoS 0 one, which libmosquitto
    /// writes at once, waits while libmosquitto may hold QoS 1 publishes back: strictly below the live window, since
    /// in a PUBACK's callback libmosquitto has yet to release the publish it held back for it. While spooling only
    /// the gateway's own QoS 0 messages come here (a device's are refused): nothing orders them after held ones. And
    /// a QoS 0 one waits while the client's queue of unwritten ones is full (`atMostOnceRoom`).
    private func mayStart(_ message: Message) -> Bool {
        message.usesWindow ? inFlight < (mode == .spooling ? maxWindow : window) : mayStartAtMostOnce
    }

    private var mayStartAtMostOnce: Bool { atMostOnceRoom && (mode == .spooling || inFlight < window) }

    private mutating func startWaiting(_ effects: inout Effects) {
        var atMostOnceBytes = 0
        while let next = waiting.first, mayStart(next) {
            if !next.usesWindow {
                guard atMostOnceBytes < Self.atMostOnceReleaseBytes else {
                    atMostOnceRoom = false
                    wantsRoomAfterHandover = true
                    return
                }
                atMostOnceBytes += next.entry.payload.count
            }
            start(waiting.popFirst()!, into: &effects)
        }
    }

    private mutating func enterSpooling(_ effects: inout Effects) {
        guard mode == .direct else { return }
        mode = .spooling
        while let message = waiting.popFirst() {
            if message.isBestEffort {
                effects.refused.append(message)
            } else if !message.spooled {
                // A message written ahead is in the spool already, where a rewind has it read again.
                spool(message.entry, device: message.device, completion: message.answeringCopy, into: &effects)
            }
        }
        resumeAll(&effects)
    }

    private mutating func spool(_ entry: SpoolEntry, device: String, completion: PublishCompletion?, into effects: inout Effects) {
        for earlier in unconfirmed.removeValue(forKey: device) ?? [] { effects.spool.append((earlier.entry, earlier.answeringCopy)) }
        effects.spool.append((entry, completion))
    }

    private mutating func resumeAll(_ effects: inout Effects) {
        for source in paused.values { decideReading(source, paused: false, into: &effects) }
        paused.removeAll()
    }
}
