import AsyncAlgorithms
import Logging
import Mosquitto
import GatehouseProtocol
import ServiceLifecycle

/// Publishes `<base>/bridge/<gw>/health` every `gateway.health_interval_s`.
struct HealthService: Service {
    let gateway: Gateway

    func run() async throws {
        let interval = gateway.startup.gateway.healthIntervalSeconds
        // Ends at graceful shutdown as well as on cancellation.
        for await _ in AsyncTimerSequence(interval: .seconds(interval), clock: .continuous).cancelOnGracefulShutdown() {
            let report = gateway.bridge.healthReport()
            if gateway.link.isConnected {
                gateway.link.publish(OutboundMessage(topic: gateway.topics.bridgeHealth(gateway.id), payload: report.serialized()), .bestEffort(.atMostOnce))
            }
        }
    }
}
