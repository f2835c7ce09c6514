import Logging
import Mosquitto
import GatehouseProtocol
import ServiceLifecycle
import UnixSignals

/// Applies changes without dropping devices: the revoked file is polled every second, and SIGHUP
/// reloads (`Gateway.reload`: the revocation list, the TLS certificate for new connections, and the
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
            // Cancelled (another service failed) as well as shut down: a cancelled sleep returns at once.
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
                gateway.reloader.pollRevocations()
            }
            group.cancelAll()
        }
    }
}
