import GatehouseProtocol

/// What this gateway knows of one device's reported state: the document the next patch applies to, the
/// newest one the broker holds (retained), and, while documents made here are not yet confirmed by the
/// broker, the retained document they grew from. A value with mutating methods and no I/O: the directory
/// keeps one per device under its lock, and the unit tests drive it directly.
///
/// Versions only grow (PROTOCOL.md §4). When two lines grew from one base (this gateway cut off from the
/// broker kept acking patches while another gateway published for the same device, or the broker kept a
/// document this gateway's last run did not save), `resolve` folds both into one document with a version
/// above both, so nothing either line reported is lost and nothing rolls back.
struct StateMirror: Sendable, Equatable {
    /// The document the next patch applies to (what this gateway would publish).
    private(set) var current: StateDocument?
    /// The highest-version retained document seen on the broker.
    private(set) var retained: StateDocument?
    /// Set while documents made here are unconfirmed: the retained document they grew from.
    private(set) var base: StateDocument?
    /// While `base` is set: the newest document another gateway published since, to be folded in by `resolve`.
    private(set) var foreign: StateDocument?
    /// The version of the last retained document the broker sent on the current connection (nil: none
    /// yet). Not `retained`: a broker that restarted empty no longer has what it had.
    private var brokerVersion: Int64?
    /// Spooled state documents of this device below this version are folded into a merged one.
    private(set) var supersededBelow: Int64 = 0
    /// Version → `ts` of unconfirmed documents made here, to tell their echo from another gateway's
    /// document with the same version. Bounded: the oldest ones are the ones that can be in flight.
    private var own: [Int64: Int64] = [:]
    static let ownLimit = 1024

    init(current: StateDocument? = nil, retained: StateDocument? = nil, base: StateDocument? = nil, foreign: StateDocument? = nil,
         supersededBelow: Int64 = 0) {
        self.current = current
        self.retained = retained
        self.base = base
        self.foreign = base == nil ? nil : foreign
        self.supersededBelow = supersededBelow
    }

    /// What a retained document seen on the broker meant.
    enum Observation: Equatable {
        /// One of this gateway's own documents came back.
        case echo
        /// Nothing was pending here: it is the document now.
        case adopted
        /// Another line grew from the same base while documents made here are unconfirmed: `resolve`.
        case conflict
        /// The broker's copy went back below a version it already had (a late or stale publish elsewhere).
        case rolledBack
        /// Older than what is pending here, and no conflict.
        case ignored
    }

    /// Applies a patch (RFC 7386); nil (and nothing changes) when the merged `data` would be longer than `maxBytes`.
    mutating func apply(patch: JSONObject, now: Int64, maxBytes: Int) -> StateDocument? {
        let merged = JSONValue.mergePatch(target: current.map { .object($0.data) }, patch: .object(patch))
        let data = merged.objectValue ?? JSONObject()
        guard JSONValue.object(data).serialized().count <= maxBytes else { return nil }
        let document = StateDocument(ts: now, version: (current?.version ?? 0).addingSaturated(1), data: data)
        if base == nil { base = retained ?? current ?? StateDocument(ts: 0, version: 0, data: JSONObject()) }
        if own.count < Self.ownLimit { own[document.version] = document.ts }
        current = document
        return document
    }

    /// A retained document seen on the broker; `held`: this gateway holds the device now.
    mutating func observeRetained(_ document: StateDocument, held: Bool) -> Observation {
        brokerVersion = document.version
        if own[document.version] == document.ts, let current, document.version <= current.version {
            if document.version >= (retained?.version ?? Int64.min) { retained = document }
            own = own.filter { $0.key > document.version }
            // Confirmed, unless another line was seen meanwhile (our echo may have overwritten it on the broker).
            if document.version == current.version, foreign == nil { base = nil; own = [:] }
            return .echo
        }
        if let retained, document.version < retained.version { return .rolledBack }
        retained = document
        if let base {
            guard document.version > base.version else { return .ignored }
            if document.version >= (foreign?.version ?? Int64.min) { foreign = document }
            return .conflict
        }
        if let current {
            if document.version < current.version { return .rolledBack }
            // Same version, other content, over the holder's own: a stale publish elsewhere; the holder's stands.
            if held, document.version == current.version, document.data != current.data { return .rolledBack }
        }
        current = document
        return .adopted
    }

    /// The broker connection was lost: what the broker has is known again only from what it sends next.
    mutating func connectionLost() {
        brokerVersion = nil
    }

    /// The retained document was cleared: the device's state starts over.
    mutating func clear() {
        self = StateMirror()
    }

    /// Settles a conflict: returns the document to publish (versions above both lines), or nil when there is
    /// nothing to settle. `localIsNewer`: this gateway holds the device now, so what it reported comes last.
    mutating func resolve(localIsNewer: Bool, now: Int64) -> StateDocument? {
        guard let base, let current, let foreign else { return nil }
        if foreign.data == current.data {
            if foreign.version >= current.version { self.current = foreign }
            self.base = nil
            self.foreign = nil
            own = [:]
            return nil
        }
        let data = localIsNewer
            ? StateMerge.merge(base: base.data, older: foreign.data, newer: current.data)
            : StateMerge.merge(base: base.data, older: current.data, newer: foreign.data)
        let top = max(current.version, foreign.version, retained?.version ?? 0)
        let merged = StateDocument(ts: now, version: top.addingSaturated(1), data: data)
        self.current = merged
        self.base = foreign
        self.foreign = nil
        own = [merged.version: merged.ts]
        supersededBelow = merged.version
        return merged
    }

    /// Whether a spooled document of this device is superseded: the broker has (on this connection) that
    /// version or a newer one, or it was folded into a merged document. Replaying it would roll back.
    func supersedes(version: Int64) -> Bool {
        version < supersededBelow || version <= (brokerVersion ?? Int64.min)
    }
}
