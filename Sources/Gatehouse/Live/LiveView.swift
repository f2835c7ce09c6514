import GatehouseConfig
import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import NIOHTTP1
import Synchronization

/// Live view (PROTOCOL.md §8): who may watch which camera, the lease of each watched camera (`start`/`stop`),
/// and the fan-out of its frames to its viewers. One received frame is one `ByteBuffer` that every viewer
/// writes as it is (no copy per viewer); each viewer's `FramePump` keeps at most one frame waiting.
///
/// Owns the cameras' leases and viewer lists. Reads `CredentialStore` (viewer tokens) and `DeviceDirectory`
/// (sessions, the `live` capability from the last `hello` or retained `meta`); writes to camera sessions.
/// `DeviceHub` tells it about camera connections and live frames; `GatewayChannel` hands it viewers.
final class LiveView: Sendable {
    /// An admitted viewer request: a slot under `live.max_viewers` is held until `release()`.
    struct Ticket: Sendable {
        var device: String
        var claims: TokenClaims
        var fps: Double
    }

    private struct Camera {
        var lease: CameraLease
        var viewers: [any LiveViewer] = []
        /// The newest frame and when it arrived (a new viewer gets it if it is under a second old).
        var latest: (frame: ByteBuffer, at: NIODeadline)?
        /// The session frames are taken from.
        var session: DeviceSession?
    }

    private struct State {
        var cameras: [String: Camera] = [:]
        /// Admitted viewer connections (tickets held), all cameras.
        var viewers = 0
    }

    private let state = Mutex(State())
    private let settings: LiveSection
    private let credentials: CredentialStore
    private let directory: DeviceDirectory
    private let timerLoop: any EventLoop
    private let logger: Logger
    let metrics = LiveMetrics()

    init(settings: LiveSection, credentials: CredentialStore, directory: DeviceDirectory, timerLoop: any EventLoop, logger: Logger) {
        self.settings = settings
        self.credentials = credentials
        self.directory = directory
        self.timerLoop = timerLoop
        self.logger = logger
    }

    /// `live.publish_mqtt`: live frames also go to `<base>/<dev>/media/live`.
    var publishesToMQTT: Bool { settings.publishMQTT }

    // MARK: Admission

    /// Decides a viewer request in the order of PROTOCOL.md §8: a malformed device id (404), the token (401),
    /// its `devices` (403), the camera (404: never seen, or no `capabilities.live`), capacity (503). An admitted
    /// request holds a viewer slot: call `release()` when its connection closes.
    func admit(_ request: ViewerRequest) -> Result<Ticket, Refusal> {
        let device = request.device
        guard Identifiers.isValidDeviceID(device) else {
            return .failure(Refusal(status: .notFound, code: "not_found", message: "'\(device)' is not a valid device id"))
        }
        guard let token = request.token else {
            return .failure(Refusal(status: .unauthorized, code: "unauthorized", message: "missing token: send Authorization: Bearer <viewer jwt> or ?token=<viewer jwt>"))
        }
        let claims: TokenClaims
        do {
            claims = try credentials.authenticate(token)
        } catch {
            return .failure(Refusal(status: .unauthorized, code: "unauthorized", message: error.message))
        }
        guard claims.scope == .view else {
            return .failure(Refusal(status: .unauthorized, code: "unauthorized", message: "a device token cannot watch: issue a viewer token (scope view)"))
        }
        guard claims.mayView(device) else {
            return .failure(Refusal(status: .forbidden, code: "forbidden", message: "this viewer token does not list device '\(device)'"))
        }
        guard cameraMaxFPS(device) != nil else {
            return .failure(Refusal(status: .notFound, code: "not_found", message: "no live-capable camera '\(device)' is known (its hello declares no capabilities.live)"))
        }
        let admitted = state.withLock { state -> Bool in
            guard state.viewers < settings.maxViewers else { return false }
            state.viewers += 1
            return true
        }
        guard admitted else {
            return .failure(Refusal(status: .serviceUnavailable, code: "unavailable", message: "this gateway has its \(settings.maxViewers) live viewers; retry later", retryAfter: 5))
        }
        metrics.viewers(state.withLock { $0.viewers })
        return .success(Ticket(device: device, claims: claims, fps: request.fps ?? CameraLease.defaultFPS))
    }

    /// Gives back an admitted request's viewer slot (its connection closed).
    func release() {
        let count = state.withLock { state in
            state.viewers = max(0, state.viewers - 1)
            return state.viewers
        }
        metrics.viewers(count)
    }

    /// The camera's `capabilities.live.max_fps` (infinity when it declares none); nil when the device is not
    /// known as live-capable.
    private func cameraMaxFPS(_ device: String) -> Double? {
        guard case .object(let live)? = directory.meta(device)?.capabilities?["live"] else { return nil }
        guard let maxFPS = live["max_fps"]?.numberValue?.doubleValue, maxFPS > 0, maxFPS.isFinite else { return .infinity }
        return maxFPS
    }

    // MARK: Viewers

    /// Adds a viewer of an admitted ticket: it is told the status at once, gets the newest frame if one arrived
    /// within the last second, and starts the camera's lease if it is the first.
    func attach(_ viewer: any LiveViewer) {
        let device = viewer.device
        let cameraMax = cameraMaxFPS(device)
        let (effects, status, latest, connected) = state.withLock { state in
            var camera = state.cameras[device] ?? Camera(lease: CameraLease(gatewayMaxFPS: Double(settings.maxFPS)))
            state.cameras[device] = nil
            // The camera is in the directory but its `cameraConnected` has not come yet: it is connected now, which the
            // viewers already here are told, and started if they hold a lease (that call then finds the session known
            // and does nothing).
            var connected: (status: LiveStatus?, viewers: [any LiveViewer]) = (nil, [])
            if camera.session == nil, let session = directory.session(device) {
                camera.session = session
                let effects = camera.lease.cameraDidConnect()
                command(effects.send, to: session)
                connected = (effects.status, camera.viewers)
            }
            camera.viewers.append(viewer)
            let effects = camera.lease.viewerJoined(requested: viewer.requestedFPS, cameraMaxFPS: cameraMax == .infinity ? nil : cameraMax)
            command(effects.send, to: camera.session)
            let fresh = camera.latest.flatMap { NIODeadline.now() - $0.at < .seconds(1) ? $0.frame : nil }
            let result = (effects, camera.lease.status, fresh, connected)
            state.cameras[device] = camera
            return result
        }
        if let changed = connected.status { for earlier in connected.viewers { earlier.tell(changed) } }
        viewer.tell(status)
        if let latest { viewer.deliver(latest) }
        perform(effects, device: device, viewers: [])
        logger.info("live viewer joined", metadata: ["device": "\(device)", "viewer": "\(viewer.claims.subject)"])
        // Admitted before the revocation list changed, attached after its sweep (`endRevoked`): ended here.
        if credentials.isRevoked(viewer.claims) { viewer.end(.revoked) }
    }

    /// Removes a viewer whose connection closed; the last one starts the idle timer.
    func detach(_ viewer: any LiveViewer) {
        let device = viewer.device
        let effects = state.withLock { state -> CameraLease.Effects? in
            guard var camera = state.cameras[device] else { return nil }
            state.cameras[device] = nil
            let before = camera.viewers.count
            camera.viewers.removeAll { $0 === viewer }
            let effects = camera.viewers.count < before ? camera.lease.viewerLeft() : CameraLease.Effects()
            state.cameras[device] = camera
            return effects
        }
        if let effects { perform(effects, device: device, viewers: []) }
    }

    /// Ends every viewer (graceful shutdown).
    func endAll(_ reason: ViewerEnd) {
        let viewers = state.withLock { $0.cameras.values.flatMap(\.viewers) }
        for viewer in viewers { viewer.end(reason) }
    }

    /// Ends the viewers whose token is revoked now (after the revocation list changed).
    func endRevoked() {
        let viewers = state.withLock { $0.cameras.values.flatMap(\.viewers) }
        for viewer in viewers where credentials.isRevoked(viewer.claims) { viewer.end(.revoked) }
    }

    // MARK: Cameras

    /// A device connected: a camera someone watches is sent `start` at once.
    func cameraConnected(_ session: DeviceSession) {
        let found = state.withLock { state -> (CameraLease.Effects, [any LiveViewer])? in
            // A session replaced before this call came (a newer connect of the camera took over meanwhile) is not the
            // camera any more: taking it would drop the newer one's frames and tell the viewers `offline` when it ends.
            guard state.cameras[session.device] != nil, directory.session(session.device) === session else { return nil }
            return update(&state, session.device) { camera in
                guard camera.session !== session else { return (CameraLease.Effects(), camera.viewers) }
                camera.session = session
                camera.latest = nil
                let effects = camera.lease.cameraDidConnect()
                command(effects.send, to: session)
                return (effects, camera.viewers)
            }
        }
        if let (effects, viewers) = found { perform(effects, device: session.device, viewers: viewers) }
    }

    /// A device's connection ended: its viewers see `offline` (and stay).
    func cameraDisconnected(_ session: DeviceSession) {
        let found = state.withLock { state -> (CameraLease.Effects, [any LiveViewer])? in
            guard let camera = state.cameras[session.device], camera.session === session else { return nil }
            return update(&state, session.device) { camera in
                camera.session = nil
                camera.latest = nil
                return (camera.lease.cameraDidDisconnect(), camera.viewers)
            }
        }
        if let (effects, viewers) = found { perform(effects, device: session.device, viewers: viewers) }
    }

    /// A live media frame (`stream` `live`) from a camera: to every viewer of it, newest first.
    func frame(_ payload: ByteBuffer, from session: DeviceSession) {
        metrics.received()
        let found = state.withLock { state -> (CameraLease.Effects, [any LiveViewer])? in
            guard let camera = state.cameras[session.device], camera.session === session else { return nil }
            return update(&state, session.device) { camera in
                camera.latest = (payload, .now())
                return (camera.lease.frameArrived(), camera.viewers)
            }
        }
        guard let (effects, viewers) = found else { return }
        for viewer in viewers {
            if let status = effects.status { viewer.tell(status) }
            viewer.deliver(payload)
        }
    }

    /// What the status page shows of a device's live view; nil when it is not live-capable.
    func summary(of device: String) -> JSONValue? {
        guard let maxFPS = cameraMaxFPS(device) else { return nil }
        let lease = state.withLock { $0.cameras[device]?.lease }
        return .object(JSONObject([
            ("viewers", .number(JSONNumber(lease?.viewers ?? 0))),
            ("fps", lease?.fps.map(Self.json) ?? .null),
            ("max_fps", maxFPS.isFinite ? Self.json(maxFPS) : .null),
        ]))
    }

    /// A rate as JSON: whole numbers as integers (`5`, not `5.0`).
    private static func json(_ value: Double) -> JSONValue {
        if value == value.rounded(), abs(value) < 1e15 { return .number(JSONNumber(Int64(value))) }
        return JSONNumber(value).map(JSONValue.number) ?? .null
    }

    // MARK: Effects

    /// Changes one camera record in place (its viewer list is not copied) and forgets it once it is idle.
    private func update<R>(_ state: inout State, _ device: String, _ body: (inout Camera) -> R) -> R {
        let result = body(&state.cameras[device]!)
        if state.cameras[device]!.lease.isIdle && state.cameras[device]!.viewers.isEmpty { state.cameras[device] = nil }
        return result
    }

    /// Queues the camera's `start` or `stop`, with the lock held: the camera then gets them in the order they were
    /// decided (sent after the lock, an idle timer's `stop` could overtake a joining viewer's `start`, and the camera
    /// stayed stopped until it reconnected). Nothing is written here: `LoopFrames` queues the frame under its own lock,
    /// for the camera's loop (a session in the directory has its `welcome` queued already). Logged by `perform`.
    private func command(_ control: CameraLease.Effects.Control?, to session: DeviceSession?) {
        guard let control, let session else { return }
        session.sendText(Self.message(control).encoded())
    }

    private static func message(_ control: CameraLease.Effects.Control) -> LiveControl {
        switch control {
        case .start(let fps): .start(fps: fps)
        case .stop: .stop
        }
    }

    /// Carries out the rest of a lease's effects, outside the lock: the viewers' status, the idle timer.
    private func perform(_ effects: CameraLease.Effects, device: String, viewers: [any LiveViewer]) {
        if let status = effects.status {
            for viewer in viewers { viewer.tell(status) }
        }
        if let control = effects.send { logger.debug("live \(Self.message(control))", metadata: ["device": "\(device)"]) }
        if let generation = effects.startIdleTimer {
            timerLoop.scheduleTask(in: .seconds(Int64(settings.idleSeconds))) { [self] in
                idleElapsed(device: device, generation: generation)
            }
        }
    }

    private func idleElapsed(device: String, generation: UInt64) {
        let found = state.withLock { state -> CameraLease.Effects? in
            guard state.cameras[device] != nil else { return nil }
            return update(&state, device) { camera in
                let effects = camera.lease.idleElapsed(generation: generation)
                command(effects.send, to: camera.session)
                if !camera.lease.isLeased { camera.latest = nil }
                return effects
            }
        }
        if let effects = found { perform(effects, device: device, viewers: []) }
    }
}

/// So that admission can answer with a `Result`.
extension Refusal: Error {}
