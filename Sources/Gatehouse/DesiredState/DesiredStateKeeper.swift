import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import Synchronization

/// The desired state of PROTOCOL.md 7: applies `desired/set` patches (when this gateway is the device's
/// applier), answers them, publishes the retained `desired` and `delta` documents, and sends the device its
/// delta after `welcome` and after every accepted patch.
///
/// Owns the `DesiredBook`: one `DesiredRecord` per device known to have a desired document or delta. Calls `BrokerLink`; reads
/// `DeviceDirectory` (sessions, holders, meta, reported state) and `SettingsStore` (`limits.max_desired_bytes`).
///
/// Order: patches arrive one at a time from `BrokerService`. A held device's delta is computed and
/// published on its event loop, where its `state` messages are handled too, so an older delta can never
/// overtake a newer one; for a device nobody holds, the reported state does not change here.
final class DesiredStateKeeper: Sendable {
    private let gatewayID: String
    private let topics: Topics
    private let link: BrokerLink
    private let directory: DeviceDirectory
    private let settings: SettingsStore
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let book = Mutex(DesiredBook())
    /// Each device's patches, one at a time (`PatchLine`).
    private let line = Mutex(PatchLine<Patch>())

    /// A `desired/set` as it waits in the line: only what applying and answering it read, so that what waits is the
    /// bytes counted (the MQTT message's other properties, user properties say, are not kept).
    private struct Patch: Sendable {
        let payload: [UInt8]
        let replyTo: ReplyTo?

        init(_ message: MQTTMessage) {
            payload = message.payload
            replyTo = message.properties.responseTopic.map { ReplyTo(topic: $0, correlationData: message.properties.correlationData) }
        }

        var bytes: Int { payload.count + (replyTo.map { $0.topic.utf8.count + ($0.correlationData?.count ?? 0) } ?? 0) }
    }

    init(gatewayID: String, topics: Topics, link: BrokerLink, directory: DeviceDirectory, settings: SettingsStore,
         metrics: GatewayMetrics, logger: Logger) {
        self.gatewayID = gatewayID
        self.topics = topics
        self.link = link
        self.directory = directory
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: Patches

    /// A message on `<base>/<dev>/desired/set`. Every gateway gets it; only the device's applier acts, in the
    /// order the patches came, one at a time (`PatchLine`).
    func handleSet(device: String, message: MQTTMessage) {
        guard Identifiers.isValidDeviceID(device), isApplier(for: device) else { return }
        let patch = Patch(message)
        switch line.withLock({ $0.arrive(patch, bytes: patch.bytes, device: device) }) {
        case .applyNow:
            applyInTurn(patch, device: device)
        case .waits:
            return
        case .full:
            refuse(patch, device: device, "too many patches are waiting already; retry later")
        case .closed:
            refuse(patch, device: device, Self.shuttingDown, bestEffort: true)
        }
    }

    private static let shuttingDown = "the gateway applying this device's patches is shutting down; retry later"

    /// The gateway is shutting down (before its outbox stops): the line closes, and the patches waiting, and any that
    /// comes after, are answered `rejected` rather than applied. Another gateway takes the device's patches over once
    /// this one is `offline`, which the others cannot know before; an applied patch whose document then waited in this
    /// gateway's spool would reach the broker only when this gateway starts again.
    func shutDown() {
        for (device, patch) in line.withLock({ $0.drain() }) { refuse(patch, device: device, Self.shuttingDown, bestEffort: true) }
    }

    /// Answers a patch `rejected` (`bad_request`, with `reason`) without applying it. `bestEffort`: at shutdown, the
    /// answer goes now or not at all, never into a spool replayed at the next start (a retry may be answered by then).
    private func refuse(_ patch: Patch, device: String, _ reason: String, bestEffort: Bool = false) {
        let id = switch DesiredPatchRequest.parse(patch.payload) {
        case .failure(let error): error.rawID ?? .null
        case .success(let request): request.id?.json ?? freshPatchID()
        }
        answer(device: device, id: id, .rejected(.badRequest, reason), replyTo: patch.replyTo, bestEffort: bestEffort)
    }

    /// Applies `message`, then each patch that waits behind it in turn, until one is on its way to the broker (its
    /// outcome goes on with the rest).
    private func applyInTurn(_ first: Patch, device: String) {
        var next: Patch? = first
        while let patch = next {
            if apply(patch, device: device) { return }
            next = line.withLock { $0.next(device: device) }
        }
    }

    /// Applies one patch and answers it: at once when it is refused here; else once the broker has the new document,
    /// and only then are the device's `delta` and `desired` frame made of it (a document the broker refuses is
    /// undone, and nothing of it reaches the device). True while the document is on its way: its outcome then applies
    /// the next patch. (An outcome that came before `publish` returned, as a refusal by a full spool does, leaves the
    /// next to the caller's loop: taking it there, patch after patch, would nest as deep as the line is long.)
    private func apply(_ patch: Patch, device: String) -> Bool {
        let replyTo = patch.replyTo
        let request: DesiredPatchRequest
        switch DesiredPatchRequest.parse(patch.payload) {
        case .failure(let error):
            answer(device: device, id: error.rawID ?? .null, .rejected(.badRequest, error.message), replyTo: replyTo)
            return false
        case .success(let parsed):
            request = parsed
        }
        let patchID = request.id?.json ?? freshPatchID()
        let capabilities = Capabilities(directory.meta(device)?.capabilities)
        let maxBytes = settings.now.limits.maxDesiredBytes
        let decided = book.withLock { book in
            book.update(device) { record -> (DesiredPatch.Outcome, DesiredDocument?) in
                let previous = record.document
                let outcome = DesiredPatch.apply(request, to: previous, capabilities: capabilities, maxBytes: maxBytes, now: nowMs())
                if case .accepted(let document) = outcome { record.accept(document) }
                return (outcome, previous)
            }
        }
        guard case .accepted(let document) = decided.0 else {
            answer(device: device, id: patchID, decided.0, replyTo: replyTo)
            return false
        }
        let previous = decided.1
        let handoff = OutcomeHandoff()
        // The answer waits for the broker's acknowledgement of the document: a subscriber to both sees the document first.
        link.publish(
            OutboundMessage(topic: topics.desired(device), payload: document.encoded(), retain: true),
            .mustBeSafe(device: device, source: nil)
        ) { [self] outcome in
            if case .refused(let code, let text) = outcome {
                book.withLock { $0.update(device) { $0.revert(document, to: previous) } }
                logger.warning("desired document of \(device) not stored: \(text)")
                answer(device: device, id: patchID, .rejected(.badRequest, "the broker did not store the desired document (\(code.rawValue)): \(text)"), replyTo: replyTo)
            } else {
                book.withLock { $0.update(device) { $0.noteStored(document) } }
                answer(device: device, id: patchID, .accepted(document), replyTo: replyTo)
                withDeviceOrder(device) { [self] session in
                    publishDelta(of: device, always: true)
                    if let session { sendPending(to: session, always: true) }
                }
            }
            guard handoff.outcomeCame(), let next = line.withLock({ $0.next(device: device) }) else { return }
            applyInTurn(next, device: device)
        }
        return handoff.publishReturned()
    }

    /// Who applies the next patch after one whose document was published: its outcome's completion, or, when the
    /// completion ran before `publish` returned, the loop that published.
    private final class OutcomeHandoff: Sendable {
        /// 0 while neither happened, then 1 when `publish` returned first, 2 when the outcome came first.
        private let first = Atomic<Int>(0)

        /// The outcome came: whether the completion applies the next patch (`publish` had returned).
        func outcomeCame() -> Bool {
            !first.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged
        }

        /// `publish` returned: whether the document is still on its way (the completion applies the next patch).
        func publishReturned() -> Bool {
            first.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged
        }
    }

    /// The id of a patch that has none.
    private func freshPatchID() -> JSONValue {
        .string("gh-\(gatewayID)-\(nowMs())-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Whether this gateway applies the device's patches now.
    private func isApplier(for device: String) -> Bool {
        DesiredPatch.isApplier(
            myself: gatewayID, holdsDevice: directory.session(device) != nil,
            otherHolder: directory.holder(of: device, myself: gatewayID), onlineGateways: directory.onlineGateways)
    }

    /// Publishes the one answer of a patch on `response/desired` and, when the rule allows, its Response Topic.
    private func answer(device: String, id: JSONValue, _ outcome: DesiredPatch.Outcome, replyTo: ReplyTo?, bestEffort: Bool = false) {
        var object = JSONObject([("id", id)])
        switch outcome {
        case .accepted(let document):
            object["status"] = "ok"
            object["data"] = ["version": .number(document.version)]
            metrics.desiredPatch("ok")
        case .rejected(let code, let message):
            object["status"] = .string(CommandStatus.rejected.rawValue)
            object["error"] = ["code": .string(code.rawValue), "message": .string(message)]
            metrics.desiredPatch(code.rawValue)
        }
        object["ts"] = .number(nowMs())
        let payload = JSONValue.object(object).serialized()
        let delivery: Durability = bestEffort ? .bestEffort(.atLeastOnce) : .mustBeSafe(device: device, source: nil)
        link.publish(OutboundMessage(topic: topics.response(device, Topics.desiredCommand), payload: payload), delivery)
        if let replyTo, topics.isAllowedResponseTopic(replyTo.topic) {
            link.publish(OutboundMessage(topic: replyTo.topic, payload: payload, properties: MQTTProperties(correlationData: replyTo.correlationData)), delivery)
        }
    }

    // MARK: Retained documents seen on the broker

    /// A retained `<base>/<dev>/desired` (empty payload: cleared). A payload that is not a desired document
    /// changes nothing; a lower version than known is ignored.
    func observeDesired(_ payload: [UInt8], of device: String) {
        let document = payload.isEmpty ? nil : DesiredDocument.decode(payload)
        if !payload.isEmpty, document == nil { return }
        let observation = book.withLock { book in
            book.seen(device)
            let resyncing = book.isResyncing
            return book.update(device) { $0.observe(desired: document, resyncing: resyncing) }
        }
        switch observation {
        case .ignored:
            return
        case .newer:
            // Applied elsewhere (a device that moved, or a race between gateways): a held device still gets it.
            guard let session = directory.session(device) else { return }
            withDeviceOrder(device) { [self] _ in
                publishDelta(of: device, always: false)
                sendPending(to: session, always: true)
            }
        case .cleared:
            withdrawDelta(of: device)
        }
    }

    /// The document was cleared: its applier withdraws the delta, and tells a held device there is nothing to apply.
    private func withdrawDelta(of device: String) {
        guard isApplier(for: device) else { return }
        metrics.devicesWithDelta(book.withLock { book in
            book.update(device) { $0.clearDelta() }
            return book.pendingCount
        })
        link.publish(OutboundMessage(topic: topics.delta(device), payload: [], retain: true), .mustBeSafe(device: device, source: nil))
        directory.session(device)?.send(.desired(version: 0, data: JSONObject()))
    }

    // MARK: The mirror copy

    /// The documents, for the mirror copy (`MirrorStore`): a gateway that starts while the broker is unreachable
    /// sends a device its pending desired state right after `welcome`, before its queued commands.
    var snapshot: [String: DesiredDocument] {
        book.withLock { $0.records.compactMapValues(\.stored) }
    }

    /// Restores the saved documents at start, before any device is admitted, as if the broker had sent them: its
    /// retained copies, when they come, count as in any resynchronisation.
    func restore(_ documents: [String: DesiredDocument]) {
        book.withLock { book in
            for (device, document) in documents { _ = book.update(device) { $0.observe(desired: document) } }
        }
    }

    /// Counts changes of the documents (the mirror copy is saved when it moves).
    var changes: UInt64 { book.withLock { $0.changes } }

    // MARK: Resynchronisation with the broker

    /// The broker connection is back (or the gateway starts): until `endResync`, a retained `desired` the broker
    /// sends is taken as it is, a lower version too (`DesiredRecord.observe(desired:resyncing:)`).
    func beginResync() {
        book.withLock { $0.beginResync() }
    }

    /// Every retained document came again (before the spool's replay): a document the broker no longer has was
    /// cleared while this gateway was cut off, and is cleared here too, unless it is this gateway's own on its way
    /// to the broker. Only when `clearingUnseen` (the broker's echo said every retained copy came): after a
    /// resynchronisation that ended without it, a copy that did not come proves nothing.
    func endResync(clearingUnseen: Bool = true) {
        let unseen = book.withLock { $0.endResync() }
        guard clearingUnseen else { return }
        for device in unseen {
            guard book.withLock({ $0.update(device) { $0.observe(desired: nil, resyncing: true) } }) == .cleared else { continue }
            withdrawDelta(of: device)
        }
        // A retained delta whose document is gone (cleared while no gateway was there to withdraw the delta).
        for device in book.withLock({ $0.deltasWithoutDocument }) { withdrawDelta(of: device) }
    }

    /// Whether a spooled `desired` or `delta` would roll the retained copy back under what other gateways made
    /// while this one was cut off (known now, after the resynchronisation); this gateway's own latest is replayed.
    func supersedes(_ payload: [UInt8], of device: String, isDelta: Bool) -> Bool {
        book.withLock { book in
            let record = book.records[device] ?? DesiredRecord()
            if isDelta { return payload.isEmpty ? record.supersedes(delta: nil) : DeltaDocument.decode(payload).map(record.supersedes(delta:)) ?? false }
            return DesiredDocument.decode(payload).map(record.supersedes(desired:)) ?? false
        }
    }

    /// A retained `<base>/<dev>/delta` (empty payload: cleared).
    func observeDelta(_ payload: [UInt8], of device: String) {
        let delta = payload.isEmpty ? nil : DeltaDocument.decode(payload)
        if !payload.isEmpty, delta == nil { return }
        metrics.devicesWithDelta(book.withLock { book in
            book.update(device) { $0.observe(delta: delta) }
            return book.pendingCount
        })
    }

    // MARK: Device events (on the device's event loop)

    /// Right after `welcome`, before queued commands: the pending delta, when there is one. A delta that the
    /// reported state has changed since it was published (elsewhere, or before a restart) is published anew.
    func deviceConnected(_ session: DeviceSession) {
        publishDelta(of: session.device, always: false)
        sendPending(to: session, always: false)
    }

    /// The device reported state (`document` is the merged result): the delta, when that changes its data.
    func reportedStateChanged(_ document: StateDocument, of device: String) {
        publishDelta(of: device, always: false, reported: document)
    }

    /// The retained reported state was emptied on the broker (no device message did that): the applier refreshes the
    /// delta against nothing reported, as after any other reported-state update.
    func reportedStateCleared(of device: String) {
        guard isApplier(for: device) else { return }
        withDeviceOrder(device) { [self] _ in publishDelta(of: device, always: false) }
    }

    // MARK: Status

    /// `desired_version`, `delta`, `delta_pending_since` for the status page (nulls when there is no document).
    func status(of device: String) -> (version: Int64?, delta: JSONObject?, pendingSince: Int64?) {
        book.withLock { book in
            guard let record = book.records[device], let document = record.stored else { return (nil, nil, nil) }
            return (document.version, record.delta?.data, record.pendingSince)
        }
    }

    // MARK: Helpers

    /// Runs `body` where the device's deltas are ordered: on its session's event loop when held here, else at once.
    private func withDeviceOrder(_ device: String, _ body: @escaping @Sendable (DeviceSession?) -> Void) {
        guard let session = directory.session(device) else { return body(nil) }
        session.channel.eventLoop.execute { body(session) }
    }

    private func publishDelta(of device: String, always: Bool, reported: StateDocument? = nil) {
        let state = reported ?? directory.stateDocument(device)
        let (delta, pendingCount) = book.withLock { book in
            (book.update(device) { $0.refreshDelta(reported: state, always: always, now: nowMs()) }, book.pendingCount)
        }
        guard let delta else { return }
        metrics.devicesWithDelta(pendingCount)
        link.publish(OutboundMessage(topic: topics.delta(device), payload: delta.encoded(), retain: true), .mustBeSafe(device: device, source: nil))
    }

    /// Sends the `desired` frame: the delta against the reported state now; an empty one only when `always`.
    private func sendPending(to session: DeviceSession, always: Bool) {
        let state = directory.stateDocument(session.device)
        let frame = book.withLock { book -> GatewayMessage? in
            guard let record = book.records[session.device], let document = record.stored else { return nil }
            let pending = record.pendingDelta(reported: state)
            if pending == nil && !always { return nil }
            return .desired(version: document.version, data: pending?.data ?? JSONObject())
        }
        if let frame { session.send(frame) }
    }
}

/// The keeper's records, and how many of them have a pending delta (kept as records change, for the gauge).
struct DesiredBook: Sendable {
    private(set) var records: [String: DesiredRecord] = [:]
    private(set) var pendingCount = 0
    /// Bumped by every change of a record's stored document (see `DesiredStateKeeper.changes`).
    private(set) var changes: UInt64 = 0
    /// While the broker sends its retained documents again (`beginResync` … `endResync`): the devices with a
    /// document here whose retained copy has not come yet.
    private(set) var unseen: Set<String>?

    var isResyncing: Bool { unseen != nil }

    /// The broker connection is back (or the gateway starts): its retained documents are about to be sent again.
    mutating func beginResync() {
        unseen = Set(records.compactMap { $0.value.document == nil ? nil : $0.key })
    }

    /// The devices with a delta known but no document: a device without a document has no delta.
    var deltasWithoutDocument: [String] {
        records.compactMap { device, record in record.document == nil && record.delta != nil ? device : nil }
    }

    /// A retained `desired` of `device` came.
    mutating func seen(_ device: String) {
        unseen?.remove(device)
    }

    /// Every retained document came again: the devices whose document the broker no longer has (cleared while this
    /// gateway was cut off), to clear here too.
    mutating func endResync() -> [String] {
        defer { unseen = nil }
        return unseen.map { Array($0) } ?? []
    }

    /// Changes one device's record (a fresh one when there is none); an empty record is forgotten.
    mutating func update<Result>(_ device: String, _ body: (inout DesiredRecord) -> Result) -> Result {
        var record = records[device] ?? DesiredRecord()
        let wasPending = record.isPending
        let result = body(&record)
        pendingCount += (record.isPending ? 1 : 0) - (wasPending ? 1 : 0)
        if records[device]?.stored != record.stored { changes &+= 1 }
        records[device] = record.isEmpty ? nil : record
        return result
    }
}
