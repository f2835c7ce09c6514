/// The live-view decisions for one camera (PROTOCOL.md §8, lease and fps), as a value type without I/O:
/// each event returns what the gateway must do, and `LiveView` does it: the camera's `start`/`stop` queued while its
/// lock is held (so they keep the order they were decided in), the rest after releasing it.
///
/// - The first viewer starts a lease; the camera is sent `start` at once when it is connected, else as soon
///   as it connects.
/// - `fps` is the smallest of what the viewer asked, the camera's `max_fps` and the gateway's `live.max_fps`;
///   a later viewer asking more raises it (another `start`), and it is never lowered during a lease.
/// - `stop` goes out `live.idle_s` after the last viewer left, unless a viewer came back meanwhile: each idle
///   timer carries a generation, and only the newest one counts.
/// - The status viewers see: `offline` while the camera is not connected, `waiting` until a frame arrives,
///   then `streaming`.
struct CameraLease: Equatable {
    /// `live.max_fps`.
    let gatewayMaxFPS: Double
    /// Viewers watching now.
    private(set) var viewers = 0
    /// The lease's frame rate; nil while there is no lease.
    private(set) var fps: Double?
    /// The rate the connected camera was last told to start at; nil when it was not told (or told to stop).
    private(set) var sentFPS: Double?
    private(set) var cameraConnected = false
    /// A frame arrived since the camera connected or the lease started.
    private(set) var hasFrame = false
    /// The generation of the idle timer that may end the lease; nil when none runs.
    private(set) var idleTimer: UInt64?
    private var generations: UInt64 = 0

    init(gatewayMaxFPS: Double) {
        self.gatewayMaxFPS = gatewayMaxFPS
    }

    /// What the gateway does after an event.
    struct Effects: Equatable {
        /// A message for the camera.
        var send: Control?
        /// Start an idle timer with this generation (`live.idle_s`).
        var startIdleTimer: UInt64?
        /// The viewers' status changed to this.
        var status: LiveStatus?

        enum Control: Equatable {
            case start(fps: Double)
            case stop
        }
    }

    /// The status a viewer is told now.
    var status: LiveStatus {
        guard cameraConnected else { return .offline }
        return hasFrame ? .streaming : .waiting
    }

    /// Whether the gateway wants frames from the camera (a lease runs).
    var isLeased: Bool { fps != nil }

    /// The default rate when a viewer asks none (`?fps=` missing, unreadable or not positive).
    static let defaultFPS = 5.0

    /// A viewer arrived asking `requested` frames per second; `cameraMaxFPS` is the camera's declared `max_fps`.
    mutating func viewerJoined(requested: Double, cameraMaxFPS: Double?) -> Effects {
        let before = status
        viewers += 1
        idleTimer = nil
        if fps == nil { hasFrame = false }
        let wanted = min(requested > 0 && requested.isFinite ? requested : Self.defaultFPS, cameraMaxFPS ?? .infinity, gatewayMaxFPS)
        fps = max(fps ?? 0, wanted)
        var effects = Effects(status: status == before ? nil : status)
        if cameraConnected, sentFPS != fps, let fps {
            sentFPS = fps
            effects.send = .start(fps: fps)
        }
        return effects
    }

    /// A viewer left; the last one starts the idle timer.
    mutating func viewerLeft() -> Effects {
        viewers = max(0, viewers - 1)
        guard viewers == 0, fps != nil else { return Effects() }
        generations += 1
        idleTimer = generations
        return Effects(startIdleTimer: generations)
    }

    /// The idle timer of `generation` fired: ends the lease if it is still the newest timer and nobody watches.
    mutating func idleElapsed(generation: UInt64) -> Effects {
        guard idleTimer == generation, viewers == 0 else { return Effects() }
        idleTimer = nil
        fps = nil
        hasFrame = false
        var effects = Effects()
        if cameraConnected, sentFPS != nil {
            effects.send = .stop
        }
        sentFPS = nil
        return effects
    }

    /// The camera connected (a new session): it starts at once when someone watches.
    mutating func cameraDidConnect() -> Effects {
        let before = status
        cameraConnected = true
        hasFrame = false
        sentFPS = nil
        var effects = Effects(status: status == before ? nil : status)
        if viewers > 0, let fps {
            sentFPS = fps
            effects.send = .start(fps: fps)
        }
        return effects
    }

    /// The camera's session ended.
    mutating func cameraDidDisconnect() -> Effects {
        let before = status
        cameraConnected = false
        hasFrame = false
        sentFPS = nil
        return Effects(status: status == before ? nil : status)
    }

    /// A live frame arrived from the connected camera.
    mutating func frameArrived() -> Effects {
        guard cameraConnected, !hasFrame else { return Effects() }
        let before = status
        hasFrame = true
        return Effects(status: status == before ? nil : status)
    }

    /// Nothing watches and no lease runs: the record can be forgotten.
    var isIdle: Bool { viewers == 0 && fps == nil && !cameraConnected }
}
