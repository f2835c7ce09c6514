import Logging
import Mosquitto
import GatehouseProtocol
import ServiceLifecycle

/// Publishes `<base>/bridge/<gw>/health` every `gateway.health_interval_s`.
struct HealthService: Service {
    let gateway: Gateway

    func run() async throws {
        let interval = gateway.startup.gateway.healthIntervalSeconds
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(interval)) }
            guard !Task.isShuttingDownGracefully else { return }
            let report = gateway.bridge.healthReport(intervalSeconds: Double(interval))
            if gateway.link.isConnected {
                gateway.link.publish(OutboundMessage(topic: gateway.topics.bridgeHealth(gateway.id), payload: report.serialized()), .bestEffort(.atMostOnce))
            }
        }
    }
}
