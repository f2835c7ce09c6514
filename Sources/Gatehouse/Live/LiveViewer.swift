import GatehouseProtocol
import NIOCore

/// One viewer connection as `LiveView` sees it: a WebSocket (`LiveSocketHandler`) or an MJPEG response
/// (`LiveMJPEGHandler`). Every method may be called from any thread; the connection does the work on its
/// event loop, in call order.
protocol LiveViewer: AnyObject, Sendable {
    /// The camera watched.
    var device: String { get }
    /// The viewer's credential (for `devices`, expiry and revocation).
    var claims: TokenClaims { get }
    /// What the viewer asked (`?fps=`), before the caps.
    var requestedFPS: Double { get }
    /// A live frame (the JPEG bytes, shared with every other viewer: never modified).
    func deliver(_ frame: ByteBuffer)
    /// The camera's status changed (WebSocket viewers get a text message; MJPEG viewers nothing).
    func tell(_ status: LiveStatus)
    /// Ends the viewer's connection.
    func end(_ reason: ViewerEnd)
}

/// What a viewer connection's handler does on its own event loop, for `LoopBoundViewer`.
protocol ViewerConnection: AnyObject, SendableMetatype {
    func deliver(_ frame: ByteBuffer)
    func tell(_ status: LiveStatus)
    func end(_ reason: ViewerEnd)
}

/// The handle `LiveView` keeps of one viewer connection: hops every call onto the connection's loop.
final class LoopBoundViewer<Connection: ViewerConnection>: LiveViewer {
    let device: String
    let claims: TokenClaims
    let requestedFPS: Double
    private let connection: NIOLoopBound<Connection>

    init(ticket: LiveView.Ticket, connection: Connection, loop: any EventLoop) {
        device = ticket.device
        claims = ticket.claims
        requestedFPS = ticket.fps
        self.connection = NIOLoopBound(connection, eventLoop: loop)
    }

    func deliver(_ frame: ByteBuffer) { onLoop { $0.deliver(frame) } }
    func tell(_ status: LiveStatus) { onLoop { $0.tell(status) } }
    func end(_ reason: ViewerEnd) { onLoop { $0.end(reason) } }

    private func onLoop(_ body: @escaping @Sendable (Connection) -> Void) {
        let loop = connection.eventLoop
        if loop.inEventLoop {
            body(connection.value)
        } else {
            let connection = self.connection
            loop.execute { body(connection.value) }
        }
    }
}

/// Why the gateway ends a viewer's connection.
enum ViewerEnd: Sendable {
    /// Graceful shutdown (WebSocket 1001).
    case shutdown
    /// The viewer token's `exp` passed (4001).
    case tokenExpired
    /// The viewer token was revoked (1008).
    case revoked

    var closeCode: UInt16 {
        switch self {
        case .shutdown: 1001
        case .tokenExpired: 4001
        case .revoked: 1008
        }
    }

    var text: String {
        switch self {
        case .shutdown: "gateway shutting down"
        case .tokenExpired: "token expired"
        case .revoked: "token revoked"
        }
    }
}

extension ViewerEnd {
    /// Ends `viewer` at its token's `exp` (an `exp` centuries away never comes); the timer goes with the connection.
    static func scheduleExpiry(of viewer: any LiveViewer, channel: any Channel) {
        guard let expiry = viewer.claims.expiresAt, expiry < Int64.max / 1000 else { return }
        let delay = max(0, expiry * 1000 - nowMs())
        guard delay < 100 * 365 * 86_400_000 else { return }
        let timer = channel.eventLoop.scheduleTask(in: .milliseconds(delay)) { viewer.end(.tokenExpired) }
        channel.closeFuture.whenComplete { _ in timer.cancel() }
    }
}
