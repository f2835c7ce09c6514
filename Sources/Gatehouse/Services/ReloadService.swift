import Logging
import Mosquitto
import GatehouseProtocol
import ServiceLifecycle
import UnixSignals

/// Applies changes without dropping devices: the revoked file is polled every second, and SIGHUP
/// re-reads it at once (revoked devices that are connected are closed with 1008) and reloads the
/// TLS certificate for new connections.
struct ReloadService: Service {
    let gateway: Gateway

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    gateway.logger.info("SIGHUP: reloading the revocation list\(gateway.deviceTLS == nil ? "" : " and the TLS certificate")")
                    _ = gateway.credentials.reloadRevoked(force: true)
                    gateway.enforceRevocations()
                    do {
                        try gateway.deviceTLS?.reload()
                    } catch {
                        gateway.logger.error("TLS not reloaded, the previous certificate stays in use: \(error)")
                    }
                }
            }
            // Cancelled (another service failed) as well as shut down: a cancelled sleep returns at once.
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
                if gateway.credentials.reloadRevoked() { gateway.enforceRevocations() }
            }
            group.cancelAll()
        }
    }
}
