import AsyncAlgorithms
import ServiceLifecycle

/// Saves the gateway's mirrors (`MirrorStore`) at most once a second when something changed, and no sooner
/// than twenty times the previous save's duration after it; the last save is made by `Gateway.shutDown`.
struct MirrorService: Service {
    let gateway: Gateway

    func run() async throws {
        var saved = gateway.mirrorChanges
        var nextSave = ContinuousClock.now
        for await _ in AsyncTimerSequence(interval: .seconds(1), clock: .continuous).cancelOnGracefulShutdown() {
            let changes = gateway.mirrorChanges
            guard changes != saved, ContinuousClock.now >= nextSave else { continue }
            saved = changes
            let took = ContinuousClock().measure { gateway.saveMirror() }
            // A large copy (tens of thousands of devices) changing every second, as in a reconnect storm, is
            // saved less often: saving takes at most about a twentieth of one core.
            nextSave = .now + took * 20
        }
    }
}
