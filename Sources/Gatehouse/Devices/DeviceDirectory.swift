import Logging
import Mosquitto
import GatehouseProtocol
import NIOCore
import Synchronization

/// What the gateway knows about devices: the sessions it holds, and the retained availability, meta and
/// state of every device on the broker (it subscribes to them all, so any gateway can answer for any device).
/// The mirrors are saved by `MirrorStore` and restored at start, so a gateway started while the broker is
/// unreachable keeps versions, sessions and capabilities.
final class DeviceDirectory: Sendable {
    private struct State {
        var sessions: [String: DeviceSession] = [:]
        var availability: [String: Availability] = [:]
        var meta: [String: DeviceMeta] = [:]
        var states: [String: StateMirror] = [:]
        var lastSession: [String: Int64] = [:]
        var onlineGateways: Set<String> = []
        /// Bumped by every change of a saved mirror, so `MirrorStore` writes only when something changed.
        var changes: UInt64 = 0
    }

    /// The saved part: what a restart must not forget.
    struct Snapshot: Sendable, Equatable {
        var availability: [String: Availability] = [:]
        var meta: [String: DeviceMeta] = [:]
        var states: [String: StateMirror] = [:]
    }

    private let state = Mutex(State())

    /// Counts changes of the saved mirrors.
    var changes: UInt64 { state.withLock { $0.changes } }

    /// The saved mirrors.
    func snapshot() -> Snapshot {
        state.withLock { Snapshot(availability: $0.availability, meta: $0.meta, states: $0.states) }
    }

    /// Restores saved mirrors at start, before any device is admitted or the broker is heard from.
    func restore(_ snapshot: Snapshot) {
        state.withLock { state in
            state.availability = snapshot.availability
            state.meta = snapshot.meta
            state.states = snapshot.states
            for (device, availability) in snapshot.availability { state.lastSession[device] = availability.session }
        }
    }

    /// The session this gateway holds for a device.
    func session(_ device: String) -> DeviceSession? {
        state.withLock { $0.sessions[device] }
    }

    /// All held sessions.
    var sessions: [DeviceSession] { state.withLock { Array($0.sessions.values) } }

    /// Number of held sessions.
    var count: Int { state.withLock { $0.sessions.count } }

    /// A session number above every one seen for this device (here or, through retained availability, elsewhere).
    func nextSessionNumber(_ device: String, now: Int64) -> Int64 {
        state.withLock { state in
            let last = max(state.lastSession[device] ?? 0, state.availability[device]?.session ?? 0)
            let next = max(now, last.addingSaturated(1))
            state.lastSession[device] = next
            return next
        }
    }

    /// Makes `session` the current one for its device; returns the one it replaces, if any. When the current one is
    /// newer (two connects of the device raced between `nextSessionNumber` and here), `session` is not attached and
    /// is returned itself: the newer connection is the one that stays.
    func attach(_ session: DeviceSession) -> DeviceSession? {
        state.withLock { state in
            if let current = state.sessions[session.device], current.number > session.number { return session }
            let previous = state.sessions[session.device]
            state.sessions[session.device] = session
            return previous
        }
    }

    /// Forgets `session` if it is still the current one; returns whether it was.
    func detach(_ session: DeviceSession) -> Bool {
        state.withLock { state in
            guard state.sessions[session.device] === session else { return false }
            state.sessions[session.device] = nil
            return true
        }
    }

    /// Records availability (seen on the broker, or published here); the one with the higher `session`
    /// wins (PROTOCOL.md §4), so a late `offline` of an older session elsewhere cannot hide the newer holder.
    /// Returns false when `availability` is older than the known one and was ignored. nil clears.
    @discardableResult
    func observe(availability: Availability?, of device: String) -> Bool {
        state.withLock { state in
            if let availability, let known = state.availability[device], availability.session < known.session { return false }
            state.availability[device] = availability
            state.changes &+= 1
            if let session = availability?.session {
                state.lastSession[device] = max(state.lastSession[device] ?? 0, session)
            }
            return true
        }
    }

    /// Last known availability of a device.
    func availability(_ device: String) -> Availability? {
        state.withLock { $0.availability[device] }
    }

    /// All known availability records.
    var allAvailability: [String: Availability] { state.withLock { $0.availability } }

    /// Records a gateway's bridge state.
    func observe(gateway: String, online: Bool) {
        state.withLock { state in
            if online { state.onlineGateways.insert(gateway) } else { state.onlineGateways.remove(gateway) }
        }
    }

    /// Gateways whose bridge state is `online`.
    var onlineGateways: Set<String> { state.withLock { $0.onlineGateways } }

    /// The gateway holding a device, if its availability says online and that gateway is online.
    func holder(of device: String, myself: String) -> String? {
        state.withLock { state in
            if state.sessions[device] != nil { return myself }
            guard let availability = state.availability[device], availability.state == .online else { return nil }
            guard availability.gateway == myself || state.onlineGateways.contains(availability.gateway) else { return nil }
            return availability.gateway == myself ? nil : availability.gateway
        }
    }

    /// Records meta retained on the broker. For a device held here an older one (by `ts`) is ignored: this gateway's
    /// newer one is on its way to the broker. One stamped more than a day ahead of this gateway's clock is ignored
    /// too: no gateway made it (held to it, a planted `ts` far ahead outranked every later `hello`).
    func observe(meta: DeviceMeta?, of device: String) {
        state.withLock { state in
            if let meta, meta.ts > nowMs().addingSaturated(Self.clockSkewMs) { return }
            if let meta, state.sessions[device] != nil, let known = state.meta[device], meta.ts < known.ts { return }
            state.meta[device] = meta
            state.changes &+= 1
        }
    }

    /// Records the meta of a device held here (its `hello`, or its token's): the device's own word, whatever is known.
    func record(meta: DeviceMeta, of device: String) {
        state.withLock { state in
            state.meta[device] = meta
            state.changes &+= 1
        }
    }

    /// How far ahead of this gateway's clock another gateway's may be.
    private static let clockSkewMs: Int64 = 86_400_000

    /// Last known meta (from `hello` here or retained on the broker).
    func meta(_ device: String) -> DeviceMeta? {
        state.withLock { $0.meta[device] }
    }

    /// Records a retained state document (nil: cleared) and says what it meant (see `StateMirror`).
    @discardableResult
    func observe(state document: StateDocument?, of device: String) -> StateMirror.Observation {
        state.withLock { state in
            state.changes &+= 1
            guard let document else { state.states[device] = nil; return .adopted }
            let held = state.sessions[device] != nil
            return state.states[device, default: StateMirror()].observeRetained(document, held: held)
        }
    }

    /// Applies a reported-state patch (RFC 7386) and returns the new document to publish, or nil (and
    /// nothing changes) when the merged `data` would be longer than `maxBytes` as compact JSON.
    func applyStatePatch(_ patch: JSONObject, of device: String, now: Int64, maxBytes: Int) -> StateDocument? {
        state.withLock { state in
            var mirror = state.states[device] ?? StateMirror()
            guard let document = mirror.apply(patch: patch, now: now, maxBytes: maxBytes) else { return nil }
            state.states[device] = mirror
            state.changes &+= 1
            return document
        }
    }

    /// Settles a state conflict of `device` (see `StateMirror.resolve`); returns the merged document to publish.
    func resolveState(of device: String, now: Int64) -> StateDocument? {
        state.withLock { state in
            let localIsNewer = state.sessions[device] != nil
            guard let merged = state.states[device]?.resolve(localIsNewer: localIsNewer, now: now) else { return nil }
            state.changes &+= 1
            return merged
        }
    }

    /// Devices whose state mirror has documents made here that the broker has not confirmed, or a conflict.
    var devicesWithUnconfirmedState: [String] {
        state.withLock { state in state.states.compactMap { $0.value.base != nil ? $0.key : nil } }
    }

    /// The broker connection was lost: what it holds is learnt again from what it sends after the reconnect.
    func brokerLost() {
        state.withLock { state in
            for device in state.states.keys { state.states[device]?.connectionLost() }
        }
    }

    /// Whether replaying a spooled state document of `device` with `version` would roll its state back.
    func stateSupersedes(_ device: String, version: Int64) -> Bool {
        state.withLock { $0.states[device]?.supersedes(version: version) ?? false }
    }

    /// Last known state document.
    func stateDocument(_ device: String) -> StateDocument? {
        state.withLock { $0.states[device]?.current }
    }
}
