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
