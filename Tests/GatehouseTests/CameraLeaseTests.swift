import Testing

@testable import Gatehouse

/// The lease of one camera: start on the first viewer, fps caps that only rise, stop `idle_s` after the last
/// viewer, the status viewers see.
@Suite struct CameraLeaseTests {
    func connected(_ maxFPS: Double = 10) -> CameraLease {
        var lease = CameraLease(gatewayMaxFPS: maxFPS)
        _ = lease.cameraDidConnect()
        return lease
    }

    @Test("the first viewer of a connected camera starts it at once, at the viewer's rate")
    func firstViewerStarts() {
        var lease = connected()
        let effects = lease.viewerJoined(requested: 5, cameraMaxFPS: nil)
        #expect(effects.send == .start(fps: 5))
        #expect(lease.status == .waiting)
    }

    @Test("fps is the smallest of viewer, camera and gateway; it rises for a later viewer and never falls")
    func fpsRules() {
        var lease = connected(10)
        #expect(lease.viewerJoined(requested: 3, cameraMaxFPS: 8).send == .start(fps: 3))
        #expect(lease.viewerJoined(requested: 2, cameraMaxFPS: 8).send == nil)
        #expect(lease.viewerJoined(requested: 30, cameraMaxFPS: 8).send == .start(fps: 8))
        #expect(lease.viewerJoined(requested: 30, cameraMaxFPS: nil).send == .start(fps: 10))
        #expect(lease.fps == 10)
    }

    @Test("a missing or non-positive request means the default rate", arguments: [0.0, -1, .nan, .infinity])
    func defaultRate(_ requested: Double) {
        var lease = connected()
        #expect(lease.viewerJoined(requested: requested, cameraMaxFPS: nil).send == .start(fps: CameraLease.defaultFPS))
    }

    @Test("an offline camera is started as soon as it connects, and sees offline, then waiting, then streaming")
    func offlineCamera() {
        var lease = CameraLease(gatewayMaxFPS: 10)
        #expect(lease.viewerJoined(requested: 4, cameraMaxFPS: nil).send == nil)
        #expect(lease.status == .offline)
        let connect = lease.cameraDidConnect()
        #expect(connect.send == .start(fps: 4))
        #expect(connect.status == .waiting)
        #expect(lease.frameArrived().status == .streaming)
        #expect(lease.frameArrived().status == nil)
        #expect(lease.cameraDidDisconnect().status == .offline)
        #expect(lease.cameraDidConnect().send == .start(fps: 4))
    }

    @Test("stop goes out when the newest idle timer fires with nobody watching")
    func idleStop() {
        var lease = connected()
        _ = lease.viewerJoined(requested: 5, cameraMaxFPS: nil)
        let first = lease.viewerLeft().startIdleTimer
        #expect(first != nil)
        _ = lease.viewerJoined(requested: 1, cameraMaxFPS: nil)
        let second = lease.viewerLeft().startIdleTimer
        #expect(second != nil && second != first)
        #expect(lease.idleElapsed(generation: first!).send == nil)
        #expect(lease.isLeased)
        #expect(lease.idleElapsed(generation: second!).send == .stop)
        #expect(!lease.isLeased)
        // a new lease starts from scratch, at the new viewer's rate
        #expect(lease.viewerJoined(requested: 2, cameraMaxFPS: nil).send == .start(fps: 2))
    }

    @Test("a viewer coming back within the idle time keeps the lease: the timer no longer counts")
    func comeBack() {
        var lease = connected()
        _ = lease.viewerJoined(requested: 5, cameraMaxFPS: nil)
        let timer = lease.viewerLeft().startIdleTimer!
        #expect(lease.viewerJoined(requested: 5, cameraMaxFPS: nil).send == nil)
        #expect(lease.idleElapsed(generation: timer) == CameraLease.Effects())
    }

    @Test("a lease that ends while the camera is away sends nothing, and the camera is not started on return")
    func endsWhileAway() {
        var lease = connected()
        _ = lease.viewerJoined(requested: 5, cameraMaxFPS: nil)
        _ = lease.cameraDidDisconnect()
        let timer = lease.viewerLeft().startIdleTimer!
        #expect(lease.idleElapsed(generation: timer).send == nil)
        #expect(lease.cameraDidConnect().send == nil)
    }
}
