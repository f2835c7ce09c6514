import Logging
import GatehouseProtocol
import Mosquitto
import ServiceLifecycle

/// Keeps the gateway connected to the broker: libmosquitto reconnects with backoff on its own thread;
/// this service reacts to each (re)connect and routes incoming messages. `run()` never throws for a
/// broker outage: the gateway keeps serving devices and `/readyz` says 503 meanwhile.
struct BrokerService: Service {
    let gateway: Gateway

    func run() async throws {
        try gateway.broker.start()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await event in gateway.broker.connectionEvents {
                        switch event {
                        case .connected:
                            gateway.metrics.brokerConnectionAccepted()
                            await gateway.brokerConnected()
                        case .disconnected(let reason):
                            gateway.setBrokerReady(false)
                            gateway.logger.warning("lost the broker at \(gateway.broker.options.address): \(reason); reconnecting")
                        }
                    }
                }
                group.addTask {
                    for await message in gateway.broker.messages {
                        gateway.brokerMessage(message)
                    }
                }
                // Stay until shutdown, then let the streams finish when the client stops.
                try? await gracefulShutdown()
                await gateway.shutDown()
                gateway.broker.stop()
            }
        } onGracefulShutdown: {}
    }
}
