import AsyncAlgorithms
import ServiceLifecycle

/// Saves the gateway's mirrors (`MirrorStore`) at most once a second, when something changed; the last
/// save is made by `Gateway.shutDown`.
struct MirrorService: Service {
    let gateway: Gateway

    func run() async throws {
        var saved = gateway.mirrorChanges
        for await _ in AsyncTimerSequence(interval: .seconds(1), clock: .continuous).cancelOnGracefulShutdown() {
            let changes = gateway.mirrorChanges
            guard changes != saved else { continue }
            saved = changes
            gateway.saveMirror()
        }
    }
}
