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
import UnixSignals

/// Builds the runnable gateway: the HTTP/WebSocket listener plus the broker, health and reload services,
/// started and stopped in a defined order by a service group (SIGTERM/SIGINT = graceful).
public enum GatewayApplication {
    /// Runs the gateway until SIGTERM/SIGINT, then shuts down gracefully.
    public static func run(config: GatewayConfig, configFile: String? = nil, logger: Logger) async throws {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let gateway = try Gateway(config: config, configFile: configFile, logger: logger)
        // The embedded broker listens before the gateway connects, and outlives it (see EmbeddedBrokerService).
        do {
            try await gateway.embeddedBroker?.start()
        } catch {
            await gateway.embeddedBroker?.stop(grace: .seconds(2))
            throw error
        }
        do {
            try await make(gateway: gateway, registry: registry).run()
        } catch let error as IOError where error.description.contains("bind") {
            await gateway.embeddedBroker?.stop()
            let reason = error.errnoCode == EADDRINUSE ? "the address is already in use (another gatehouse?)" : "\(error)"
            throw StartupError("gateway.listen: cannot listen on \(config.gateway.host):\(config.gateway.port): \(reason)")
        } catch {
            await gateway.embeddedBroker?.stop()
            throw error
        }
    }

    /// The services of a gateway, stopped in reverse order at SIGTERM/SIGINT: the listener first, the embedded
    /// broker last.
    static func make(gateway: Gateway, registry: PrometheusCollectorRegistry) -> ServiceGroup {
        let config = gateway.startup
        let logger = gateway.logger
        let systemd = SystemdNotifier()
        let embedded: [any Service] = gateway.embeddedBroker.map { [EmbeddedBrokerService(broker: $0, spool: gateway.link.outbox.spool, logger: logger)] } ?? []
        let responder = GatewayListener.httpResponder(gateway.router(registry: registry).buildResponder(), logger: logger)
        let listener = GatewayListener(
            channel: GatewayChannel(responder: responder, gateway: gateway),
            host: config.gateway.host, port: config.gateway.port, logger: logger,
            onRunning: { _ in
                gateway.readiness.setListening(true)
                // Ready for systemd once devices can connect; the broker may come later (messages are spooled).
                systemd.notify("READY=1")
                logger.info("listening on \(config.gateway.host):\(config.gateway.port) as gateway \(config.gateway.id)")
            }
        )
        let services: [any Service] = embedded + [
            BrokerService(gateway: gateway), HealthService(gateway: gateway), ReloadService(gateway: gateway), MirrorService(gateway: gateway),
            SystemdWatchdogService(notifier: systemd), listener,
        ]
        return ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }
}
