import GatehouseProtocol

/// What a gateway knows of one device's desired state: the retained `desired` and `delta` documents (its
/// own and those seen on the broker) and since when the delta is not empty. A value type: the decisions
/// are unit-tested without I/O, `DesiredStateKeeper` keeps one per device under its lock.
struct DesiredRecord: Sendable, Equatable {
    /// The desired document; nil when there is none (version 0).
    private(set) var document: DesiredDocument?
    /// The last delta published or seen.
    private(set) var delta: DeltaDocument?
    /// When the delta last became non-empty (Unix ms); nil while it is empty.
    private(set) var pendingSince: Int64?
    /// The version of a document this gateway accepted whose retained copy has not come back from the broker yet
    /// (it may wait in the spool): a resynchronisation does not take a lower one over it, nor clear it.
    private(set) var unconfirmed: Int64?
    /// While a document this gateway accepted is on its way (neither the broker nor the spool has it yet): the one
    /// before it (nil inside: none), which deltas and the device's frames are still made of.
    private var beforeOnItsWay: DesiredDocument??
    /// `unconfirmed` before the document on its way was accepted: a refused one gives it back (an earlier document of
    /// ours may still wait in the spool).
    private var unconfirmedBefore: Int64?
    /// The last retained `desired` seen on the broker (nil: none, or cleared): what the spool's replay compares with.
    private var onBroker: DesiredDocument?

    /// The document deltas and the device's `desired` frames are made of: one the broker or the spool has, never one
    /// that may still be refused.
    var stored: DesiredDocument? { beforeOnItsWay ?? document }

    /// What a retained `desired` seen on the broker changes.
    enum Observation: Equatable {
        /// A higher version than known (written by another gateway, or learnt at start).
        case newer
        /// The same or a lower version: ignored (our own publishes echo back; versions only grow).
        case ignored
        /// An empty retained message cleared the document.
        case cleared
    }

    /// Whether nothing is known (the record can be forgotten).
    var isEmpty: Bool { document == nil && delta == nil }

    /// Whether the last delta published or seen is not empty.
    var isPending: Bool { !(delta?.data.isEmpty ?? true) }

    /// The desired version (0 without a document).
    var version: Int64 { document?.version ?? 0 }

    /// Records a retained `desired` (nil: an empty retained message). `resyncing`: the broker sends its retained
    /// copy again after a (re)connect, and that copy is the truth, a lower version too: the document was cleared and
    /// made again while this gateway was cut off, and a patch applied here on the old one would bring back what
    /// the clear removed, above the versions made since.
    mutating func observe(desired: DesiredDocument?, resyncing: Bool = false) -> Observation {
        onBroker = desired
        guard let desired else {
            guard document != nil, !(resyncing && unconfirmed != nil) else { return .ignored }
            document = nil
            unconfirmed = nil
            unconfirmedBefore = nil
            beforeOnItsWay = nil
            return .cleared
        }
        // The broker has it (or a later one): a refusal of the document on its way gives back nothing to protect.
        if let before = unconfirmedBefore, desired.version >= before { unconfirmedBefore = nil }
        if let unconfirmed {
            guard desired.version >= unconfirmed else { return .ignored }  // ours is still on its way
            self.unconfirmed = nil
        }
        if let document, resyncing ? document == desired : document.version >= desired.version { return .ignored }
        document = desired
        beforeOnItsWay = nil
        return .newer
    }

    /// Whether a spooled `desired` document would roll the broker's retained copy back: a lower version than the one
    /// seen there, or the same version with other data (another gateway's, made while this one was cut off). Only the
    /// broker's copy counts: this gateway's own later documents, spooled too, are replayed after it, so that every
    /// accepted patch's document is published before its `ok` (which the spool holds right behind it).
    func supersedes(desired spooled: DesiredDocument) -> Bool {
        let brokerVersion = onBroker?.version ?? 0
        return brokerVersion > spooled.version || (brokerVersion == spooled.version && onBroker != spooled)
    }

    /// Whether a spooled `delta` (nil: an empty one, a withdrawal) would roll the retained copy back: older than the
    /// document or the delta known, or a withdrawal while there is a document again.
    func supersedes(delta spooled: DeltaDocument?) -> Bool {
        guard let spooled else { return stored != nil }
        if stored?.version ?? 0 > spooled.version { return true }
        guard let delta else { return false }
        return (delta.version, delta.stateVersion) > (spooled.version, spooled.stateVersion)
    }

    /// Records a retained `delta` (nil: cleared) unless it is older than the one known.
    mutating func observe(delta seen: DeltaDocument?) {
        guard let seen else {
            delta = nil
            pendingSince = nil
            return
        }
        if let delta, (delta.version, delta.stateVersion) > (seen.version, seen.stateVersion) { return }
        note(seen, now: seen.ts)
    }

    /// A patch was accepted: the new document, on its way to the broker until `noteStored(_:)` or `revert`.
    mutating func accept(_ new: DesiredDocument) {
        if beforeOnItsWay == nil {
            beforeOnItsWay = .some(document)
            unconfirmedBefore = unconfirmed
        }
        document = new
        unconfirmed = new.version
    }

    /// The broker (or the spool) has `new`: deltas and frames are made of it from now on.
    mutating func noteStored(_ new: DesiredDocument) {
        if document == new { beforeOnItsWay = nil }
    }

    /// A publish of `new` failed: back to `previous`, unless a later patch was accepted meanwhile.
    mutating func revert(_ new: DesiredDocument, to previous: DesiredDocument?) {
        guard document == new else { return }
        document = previous
        unconfirmed = unconfirmedBefore
        beforeOnItsWay = nil
    }

    /// The delta against the reported state `reported`, to publish when `always` (after an accepted patch)
    /// or when its data differs from the last one; nil when there is nothing to publish (or no document).
    mutating func refreshDelta(reported: StateDocument?, always: Bool, now: Int64) -> DeltaDocument? {
        guard let document = stored else { return nil }
        let data = DesiredDelta.compute(desired: document.data, reported: reported?.data ?? JSONObject())
        if !always, let delta, delta.version == document.version, JSONValue.object(delta.data).isEquivalent(to: .object(data)) {
            return nil
        }
        let next = DeltaDocument(ts: now, version: document.version, stateVersion: reported?.version ?? 0, data: data)
        note(next, now: now)
        return next
    }

    /// The delta to send a device that just connected: only when something is pending.
    func pendingDelta(reported: StateDocument?) -> (version: Int64, data: JSONObject)? {
        guard let document = stored else { return nil }
        let data = DesiredDelta.compute(desired: document.data, reported: reported?.data ?? JSONObject())
        return data.isEmpty ? nil : (document.version, data)
    }

    /// The delta was withdrawn with the document (empty retained `delta`).
    mutating func clearDelta() {
        delta = nil
        pendingSince = nil
    }

    private mutating func note(_ next: DeltaDocument, now: Int64) {
        if next.data.isEmpty {
            pendingSince = nil
        } else if pendingSince == nil || delta?.data.isEmpty ?? true {
            pendingSince = now
        }
        delta = next
    }
}
