import Logging
import GatehouseProtocol
import Mosquitto
import ServiceLifecycle
import Synchronization

/// Keeps the gateway connected to the broker: the MQTT client reconnects with backoff on its network thread;
/// this service has each (re)connect handled and incoming messages routed. `run()` never throws for a
/// broker outage: the gateway keeps serving devices and `/readyz` says 503 meanwhile.
struct BrokerService: Service {
    let gateway: Gateway

    func run() async throws {
        let stopping = StopFlag()
        let link = LinkLog()
        let (resynchronisations, resynchronise) = AsyncStream.makeStream(of: UInt64.self)
        // On the client's network thread, in the order things happen on the connection: a request reaches its
        // device one thread hop sooner, a burst waits in the broker's socket rather than in a queue, and the
        // outbox hears of a new connection before the retained messages it brings are routed (their publishes
        // would be refused before). None of these blocks.
        gateway.link.client.handle(
            messages: { gateway.routing.route($0) },
            events: { event in
                switch event {
                case .connected(_, let inflightLimit):
                    link.connected()
                    gateway.metrics.brokerConnectionAccepted()
                    gateway.link.linkUp(inflightLimit: inflightLimit)
                    resynchronise.yield(gateway.routing.connectionGeneration)
                case .disconnected(let reason):
                    gateway.routing.brokerLost()
                    let address = gateway.link.client.options.address
                    if stopping.isSet {
                        gateway.logger.info("disconnected from the broker at \(address) (shutting down)")
                    } else {
                        switch link.disconnected() {
                        case .lost: gateway.logger.warning("lost the broker at \(address): \(reason); reconnecting")
                        case .unreachable: gateway.logger.warning("broker unreachable at \(address): \(reason); retrying in the background")
                        case .stillUnreachable: gateway.logger.debug("broker still unreachable at \(address): \(reason)")
                        }
                    }
                }
            })
        try gateway.link.client.start()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    // Resynchronising waits for PUBACKs and the retained documents (see `Reconciler`); it starts the
                    // outbox when done. In a child task each, so that losing the broker meanwhile reaches the outbox
                    // at once. `generation` is the connection's, taken when it was accepted.
                    await withDiscardingTaskGroup { announcements in
                        for await generation in resynchronisations {
                            announcements.addTask { await gateway.routing.brokerConnected(generation: generation) }
                        }
                    }
                }
                // Stay until shutdown, then end the resynchronisations once the client has stopped.
                try? await gracefulShutdown()
                let offlineConfirmed = await gateway.shutDown()
                stopping.set()
                gateway.link.client.stop(publishingWill: !offlineConfirmed)
                resynchronise.finish()
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

/// What a `.disconnected` event says, for the log: a connection lost, or the first failed attempt since the last
/// connection (said once: the client retries every few seconds while the broker is away).
private final class LinkLog: Sendable {
    enum Loss { case lost, unreachable, stillUnreachable }
    private let state = Mutex((up: false, saidUnreachable: false))

    func connected() { state.withLock { $0 = (up: true, saidUnreachable: false) } }

    func disconnected() -> Loss {
        state.withLock { state in
            defer { state = (up: false, saidUnreachable: true) }
            return state.up ? .lost : state.saidUnreachable ? .stillUnreachable : .unreachable
        }
    }
}
