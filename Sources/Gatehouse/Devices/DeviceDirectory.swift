import Logging
import Mosquitto
import GatehouseProtocol
import NIOCore
import Synchronization

/// What the gateway knows about devices: the sessions it holds, and the retained availability, meta and
/// state of every device on the broker (it subscribes to them all, so any gateway can answer for any device).
final class DeviceDirectory: Sendable {
    private struct State {
        var sessions: [String: DeviceSession] = [:]
        var availability: [String: Availability] = [:]
        var meta: [String: DeviceMeta] = [:]
        var states: [String: StateDocument] = [:]
        var lastSession: [String: Int64] = [:]
        var onlineGateways: Set<String> = []
    }

    private let state = Mutex(State())

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

    /// Makes `session` the current one for its device; returns the one it replaces, if any.
    func attach(_ session: DeviceSession) -> DeviceSession? {
        state.withLock { state in
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

    /// Records retained availability seen on the broker.
    func observe(availability: Availability?, of device: String) {
        state.withLock { state in
            state.availability[device] = availability
            if let session = availability?.session {
                state.lastSession[device] = max(state.lastSession[device] ?? 0, session)
            }
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

    /// Records retained meta.
    func observe(meta: DeviceMeta?, of device: String) {
        state.withLock { $0.meta[device] = meta }
    }

    /// Last known meta (from `hello` here or retained on the broker).
    func meta(_ device: String) -> DeviceMeta? {
        state.withLock { $0.meta[device] }
    }

    /// Records retained state, ignoring a copy older than the one already known (our own publishes echo back).
    func observe(state document: StateDocument?, of device: String) {
        state.withLock { state in
            guard let document else { state.states[device] = nil; return }
            if let known = state.states[device], known.version >= document.version { return }
            state.states[device] = document
        }
    }

    /// Applies a reported-state patch (RFC 7386) and returns the new document to publish, or nil (and
    /// nothing changes) when the merged `data` would be longer than `maxBytes` as compact JSON.
    func applyStatePatch(_ patch: JSONObject, of device: String, now: Int64, maxBytes: Int) -> StateDocument? {
        state.withLock { state in
            let previous = state.states[device]
            let merged = JSONValue.mergePatch(target: previous.map { .object($0.data) }, patch: .object(patch))
            let data = merged.objectValue ?? JSONObject()
            guard JSONValue.object(data).serialized().count <= maxBytes else { return nil }
            let document = StateDocument(ts: now, version: (previous?.version ?? 0).addingSaturated(1), data: data)
            state.states[device] = document
            return document
        }
    }

    /// Last known state document.
    func stateDocument(_ device: String) -> StateDocument? {
        state.withLock { $0.states[device] }
    }
}
