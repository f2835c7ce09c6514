import AsyncAlgorithms
import Logging
import Mosquitto
import GatehouseProtocol
import ServiceLifecycle

/// Publishes `<base>/bridge/<gw>/health` every `gateway.health_interval_s`.
struct HealthService: Service {
    let gateway: Gateway

    func run() async throws {
        let interval = gateway.config.gateway.healthIntervalSeconds
        // Ends at graceful shutdown as well as on cancellation.
        for await _ in AsyncTimerSequence(interval: .seconds(interval), clock: .continuous).cancelOnGracefulShutdown() {
            let report = gateway.healthReport(intervalSeconds: Double(interval))
            if gateway.broker.isConnected {
                gateway.publish(gateway.topics.bridgeHealth(gateway.id), report.serialized(), qos: .atMostOnce)
            }
        }
    }
}
