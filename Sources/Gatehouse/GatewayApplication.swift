import Hummingbird
import HummingbirdCore
import Logging
import Mosquitto
import GatehouseProtocol
import Metrics
import NIOCore
import Glibc
import Prometheus
import ServiceLifecycle

/// Builds the runnable gateway: the HTTP/WebSocket listener plus the broker, health and reload services,
/// started and stopped in a defined order by Hummingbird's service group (SIGTERM/SIGINT = graceful).
public enum GatewayApplication {
    /// Runs the gateway until SIGTERM/SIGINT, then shuts down gracefully.
    public static func run(config: GatewayConfig, logger: Logger) async throws {
        do {
            try await make(config: config, logger: logger).runService()
        } catch let error as IOError where error.description.contains("bind") {
            let reason = error.errnoCode == EADDRINUSE ? "the address is already in use (another gatehouse?)" : "\(error)"
            throw StartupError("gateway.listen: cannot listen on \(config.gateway.host):\(config.gateway.port): \(reason)")
        }
    }

    /// The application for a validated config.
    static func make(config: GatewayConfig, logger: Logger) throws -> some ApplicationProtocol {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let gateway = try Gateway(config: config, logger: logger)
        let systemd = SystemdNotifier()
        return Application(
            router: gateway.router(registry: registry),
            server: HTTPServerBuilder { responder in GatewayChannel(responder: responder, gateway: gateway) },
            configuration: .init(address: .hostname(config.gateway.host, port: config.gateway.port), serverName: "gatehouse"),
            services: [
                BrokerService(gateway: gateway), HealthService(gateway: gateway), ReloadService(gateway: gateway),
                SystemdWatchdogService(notifier: systemd),
            ],
            onServerRunning: { _ in
                gateway.setListening(true)
                // Ready for systemd once devices can connect; the broker may come later (messages are spooled).
                systemd.notify("READY=1")
                logger.info("listening on \(config.gateway.host):\(config.gateway.port) as gateway \(config.gateway.id)")
            },
            logger: logger
        )
    }
}
