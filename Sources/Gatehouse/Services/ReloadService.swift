import AsyncAlgorithms
import Logging
import Mosquitto
import GatehouseProtocol
import ServiceLifecycle
import UnixSignals

/// Applies changes without dropping devices: the revoked file is polled every second, and SIGHUP
/// reloads (`Reloader.reload`: the revocation list, the TLS certificate for new connections, and the
/// reloadable keys of the config file).
struct ReloadService: Service {
    let gateway: Gateway

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    _ = gateway.reloader.reload(trigger: "SIGHUP")
                }
            }
            // Ends at graceful shutdown as well as on cancellation (another service failed).
            for await _ in AsyncTimerSequence(interval: .seconds(1), clock: .continuous).cancelOnGracefulShutdown() {
                gateway.reloader.pollRevocations()
            }
            group.cancelAll()
        }
    }
}
