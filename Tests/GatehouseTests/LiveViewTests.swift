import Foundation
import GatehouseConfig
import GatehouseProtocol
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import Gatehouse

/// `LiveView` without sockets: a camera session on an `EmbeddedChannel`, viewers that record what they are
/// told, the idle timer on the embedded loop's clock.
@Suite struct LiveViewTests {
    /// Records what `LiveView` hands a viewer.
    final class RecordingViewer: LiveViewer {
        let device: String
        let claims: TokenClaims
        let requestedFPS: Double
        let events = Mutex<[String]>([])
        let frames = Mutex<[ByteBuffer]>([])

        init(device: String, fps: Double = 5) {
            self.device = device
            self.claims = TokenClaims(subject: "viewer", scope: .view)
            self.requestedFPS = fps
        }

        func deliver(_ frame: ByteBuffer) {
            frames.withLock { $0.append(frame) }
            events.withLock { $0.append("frame \(String(buffer: frame))") }
        }
        func tell(_ status: LiveStatus) { events.withLock { $0.append(status.rawValue) } }
        func end(_ reason: ViewerEnd) { events.withLock { $0.append("end") } }
        var log: [String] { events.withLock { $0 } }
    }

    let camera = EmbeddedChannel()
    let directory = DeviceDirectory()
    let live: LiveView
    let session: DeviceSession
    let output: SendQueueLimit

    init() throws {
        let keyFile = NSTemporaryDirectory() + "live-view-tests-\(UUID().uuidString).key"
        try "0123456789abcdef0123456789abcdef\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let source = ConfigSource(yamlText: "auth:\n  key_file: \(keyFile)\nlive:\n  idle_s: 3\n  max_viewers: 2\n", environment: [:])
        let config = GatewayConfig(source: source)
        let credentials = try CredentialStore(auth: config.auth, metrics: GatewayMetrics(), logger: Logger(label: "test"))
        try? FileManager.default.removeItem(atPath: keyFile)  // read once, at startup
        live = LiveView(settings: config.live, credentials: credentials, directory: directory, timerLoop: camera.embeddedEventLoop,
                        logger: Logger(label: "test"))
        let capabilities = JSONObject([("live", .object(JSONObject([("max_fps", .number(JSONNumber(8)))])))])
        directory.observe(meta: DeviceMeta(ts: 0, kind: "camera", model: nil, firmware: nil, capabilities: capabilities), of: "cam")
        output = try camera.addDeviceOutput()
        session = DeviceSession(device: "cam", tokenKind: "camera", tokenID: nil, number: 1, connectedAt: 0, remote: "test",
                                channel: camera, output: output, frames: LoopFrames(loop: camera.eventLoop), metrics: GatewayMetrics())
        _ = directory.attach(session)
    }

    /// The text frames written to the camera so far.
    func sentToCamera() throws -> [String] {
        camera.embeddedEventLoop.run()
        return try camera.readOutboundFrames().map { String(buffer: $0.data) }
    }

    @Test("the first viewer starts the connected camera at a capped rate; frames fan out with one status change")
    func startAndFanOut() throws {
        let a = RecordingViewer(device: "cam", fps: 20)
        live.attach(a)
        #expect(try sentToCamera() == [#"{"type":"live","action":"start","fps":8}"#])
        let frame = ByteBuffer(string: "jpeg-1")
        live.frame(frame, from: session)
        live.frame(ByteBuffer(string: "jpeg-2"), from: session)
        #expect(a.log == ["waiting", "streaming", "frame jpeg-1", "frame jpeg-2"])
        // a second viewer within the second gets the newest frame at once; its lower rate changes nothing
        let b = RecordingViewer(device: "cam", fps: 1)
        live.attach(b)
        #expect(b.log == ["streaming", "frame jpeg-2"])
        #expect(try sentToCamera().isEmpty)
        // one buffer for every viewer: the same storage, not a copy
        live.frame(frame, from: session)
        let (first, second) = (a.frames.withLock { $0.last! }, b.frames.withLock { $0.last! })
        first.withUnsafeReadableBytes { p in second.withUnsafeReadableBytes { q in #expect(p.baseAddress == q.baseAddress) } }
    }

    /// A viewer admitted before the revocation list changed and attached after its sweep (`endRevoked`) is ended.
    @Test("a viewer whose token is revoked by the time it attaches is ended there")
    func revokedByTheTimeItAttaches() throws {
        let base = NSTemporaryDirectory() + "live-view-revoked-\(UUID().uuidString)"
        try "0123456789abcdef0123456789abcdef\n".write(toFile: base + ".key", atomically: true, encoding: .utf8)
        try "viewer\n".write(toFile: base + ".revoked", atomically: true, encoding: .utf8)
        defer { for suffix in [".key", ".revoked"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
        let yaml = "auth:\n  key_file: \(base).key\n  revoked_file: \(base).revoked\n"
        let config = GatewayConfig(source: ConfigSource(yamlText: yaml, environment: [:]))
        let credentials = try CredentialStore(auth: config.auth, metrics: GatewayMetrics(), logger: Logger(label: "test"))
        let live = LiveView(settings: config.live, credentials: credentials, directory: directory, timerLoop: camera.embeddedEventLoop,
                            logger: Logger(label: "test"))
        let viewer = RecordingViewer(device: "cam")
        live.attach(viewer)
        #expect(viewer.log.last == "end")
    }

    /// A replaced session whose `cameraConnected` comes late (a newer connect took over meanwhile) does not take the
    /// camera over from the newer one.
    @Test("a late cameraConnected of a replaced session is ignored")
    func lateConnectOfAReplacedSession() throws {
        let a = RecordingViewer(device: "cam")
        live.attach(a)
        _ = try sentToCamera()
        let newer = DeviceSession(device: "cam", tokenKind: "camera", tokenID: nil, number: 2, connectedAt: 0, remote: "test",
                                  channel: camera, output: output, frames: LoopFrames(loop: camera.eventLoop), metrics: GatewayMetrics())
        _ = directory.attach(newer)
        live.cameraConnected(newer)
        live.cameraConnected(session)  // the replaced one's, late
        live.frame(ByteBuffer(string: "from-newer"), from: newer)
        #expect(a.log.last == "frame from-newer")
        live.cameraDisconnected(session)
        #expect(a.log.last == "frame from-newer", "the replaced session's end is not the camera's")
    }

    /// A viewer that attaches after the camera is in the directory but before its `cameraConnected`: the viewers
    /// already there hear that it is connected.
    @Test("viewers already there hear the camera connect when a new viewer finds it first")
    func earlierViewersHearTheConnect() throws {
        let freshDirectory = DeviceDirectory()
        let keyFile = NSTemporaryDirectory() + "live-view-tests-\(UUID().uuidString).key"
        try "0123456789abcdef0123456789abcdef\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let config = GatewayConfig(source: ConfigSource(yamlText: "auth:\n  key_file: \(keyFile)\n", environment: [:]))
        let credentials = try CredentialStore(auth: config.auth, metrics: GatewayMetrics(), logger: Logger(label: "test"))
        let live = LiveView(settings: config.live, credentials: credentials, directory: freshDirectory,
                            timerLoop: camera.embeddedEventLoop, logger: Logger(label: "test"))
        let first = RecordingViewer(device: "cam")
        live.attach(first)  // no camera yet
        #expect(first.log == ["offline"])
        _ = freshDirectory.attach(session)  // the camera connects; its cameraConnected has not come yet
        live.attach(RecordingViewer(device: "cam"))
        #expect(first.log == ["offline", "waiting"])
        // The camera is started then, once: its late cameraConnected finds the session known.
        #expect(try sentToCamera() == [#"{"type":"live","action":"start","fps":5}"#])
        live.cameraConnected(session)
        #expect(try sentToCamera().isEmpty)
    }

    @Test("stop goes out idle_s after the last viewer left, not before")
    func idleStop() throws {
        let a = RecordingViewer(device: "cam")
        live.attach(a)
        _ = try sentToCamera()
        live.detach(a)
        camera.embeddedEventLoop.advanceTime(by: .milliseconds(2900))
        #expect(try sentToCamera().isEmpty)
        camera.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(try sentToCamera() == [#"{"type":"live","action":"stop"}"#])
    }

    @Test("viewers see offline when the camera goes and waiting when it comes back; it is started again at once")
    func cameraComesAndGoes() throws {
        let a = RecordingViewer(device: "cam")
        live.attach(a)
        _ = try sentToCamera()
        live.cameraDisconnected(session)
        let next = DeviceSession(device: "cam", tokenKind: "camera", tokenID: nil, number: 2, connectedAt: 0, remote: "test",
                                 channel: camera, output: output, frames: LoopFrames(loop: camera.eventLoop), metrics: GatewayMetrics())
        live.frame(ByteBuffer(string: "stale"), from: session)  // the old session's frames are not forwarded
        _ = directory.attach(next)  // as `DeviceHub` attaches it before telling the live view
        live.cameraConnected(next)
        #expect(try sentToCamera() == [#"{"type":"live","action":"start","fps":5}"#])
        #expect(a.log == ["waiting", "offline", "waiting"])
    }

    @Test("admission: capacity is held until released")
    func capacity() throws {
        let claims = TokenClaims(subject: "v", scope: .view)
        let token = DeviceToken.issue(claims, key: FleetKey(secret: Array("0123456789abcdef0123456789abcdef".utf8)))
        let request = try #require(ViewerRequest(webSocketTarget: "/v1/live/cam?token=\(token)", authorization: nil))
        #expect((try? live.admit(request).get()) != nil)
        #expect((try? live.admit(request).get()) != nil)
        guard case .failure(let refusal) = live.admit(request) else { Issue.record("a third viewer was admitted"); return }
        #expect(refusal.code == "unavailable")
        live.release()
        #expect((try? live.admit(request).get()) != nil)
        let unknown = try #require(ViewerRequest(webSocketTarget: "/v1/live/other?token=\(token)", authorization: nil))
        guard case .failure(let notFound) = live.admit(unknown) else { Issue.record("an unknown camera was admitted"); return }
        #expect(notFound.code == "not_found")
    }
}
