import Logging
import GatehouseProtocol
import Mosquitto
import ServiceLifecycle
import Synchronization

/// Keeps the gateway connected to the broker: the MQTT client reconnects with backoff on its network thread;
/// this service reacts to each (re)connect and has incoming messages routed. `run()` never throws for a
/// broker outage: the gateway keeps serving devices and `/readyz` says 503 meanwhile.
struct BrokerService: Service {
    let gateway: Gateway

    func run() async throws {
        let stopping = StopFlag()
        // Routed on the client's network thread: a request reaches its device one thread hop sooner, and a
        // burst waits in the broker's socket rather than in a queue (`route` never blocks).
        gateway.link.client.handleMessages { gateway.routing.route($0) }
        try gateway.link.client.start()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await withDiscardingTaskGroup { announcements in
                        for await event in gateway.link.client.connectionEvents {
                            switch event {
                            case .connected:
                                gateway.metrics.brokerConnectionAccepted()
                                gateway.link.linkUp()
                                // Resynchronising waits for PUBACKs and the retained documents (see `Reconciler`);
                                // it starts the outbox when done. In a child task, so that losing the broker
                                // meanwhile reaches the outbox at once.
                                let generation = gateway.routing.connectionGeneration
                                announcements.addTask { await gateway.routing.brokerConnected(generation: generation) }
                            case .disconnected(let reason):
                                gateway.routing.brokerLost()
                                if stopping.isSet {
                                    gateway.logger.info("disconnected from the broker at \(gateway.link.client.options.address) (shutting down)")
                                } else {
                                    gateway.logger.warning("lost the broker at \(gateway.link.client.options.address): \(reason); reconnecting")
                                }
                            }
                        }
                    }
                }
                // Stay until shutdown, then let the streams finish when the client stops.
                try? await gracefulShutdown()
                let offlineConfirmed = await gateway.shutDown()
                stopping.set()
                gateway.link.client.stop(publishingWill: !offlineConfirmed)
            }
        } onGracefulShutdown: {}
    }
}

/// Set once the service stops the client itself: the disconnect that follows is not a lost broker.
private final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
