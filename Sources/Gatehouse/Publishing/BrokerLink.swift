import GatehouseProtocol
import Logging
import Mosquitto

/// The gateway's side of the broker connection and the only way it publishes: one entry point with a
/// durability choice and one outcome type. Metrics for messages out are counted here, once.
///
/// Owns the libmosquitto client and the outbox. Calls nothing of the gateway: components hand it
/// messages, and `BrokerService` tells it about (re)connects.
final class BrokerLink: Sendable {
    /// The client, for subscribing and for the incoming message and connection streams (`BrokerService`).
    let client: MosquittoClient
    /// Must-be-safe messages: window, waiting queue, spool.
    let outbox: Outbox
    private let metrics: GatewayMetrics
    private let base: String
    private let logger: Logger

    init(client: MosquittoClient, spool: Spool, window: Int, writeAhead: Bool, base: String, metrics: GatewayMetrics, logger: Logger) {
        self.client = client
        self.outbox = Outbox(client: client, spool: spool, window: window, writeAhead: writeAhead, metrics: metrics, logger: logger)
        self.metrics = metrics
        self.base = base
        self.logger = logger
    }

    /// True while the broker has accepted the current connection.
    var isConnected: Bool { client.isConnected }

    /// Publishes `message`; `completion` runs once with the outcome (for best effort: on the PUBACK at
    /// QoS 1, at once at QoS 0), on libmosquitto's network thread, the client's `operations` queue (a publish its
    /// connection lost, after a fatal error), the spool's queue or the caller's thread. It must not block.
    func publish(_ message: OutboundMessage, _ durability: Durability, completion: PublishCompletion? = nil) {
        metrics.published(typeIndex: GatewayMetrics.outTypeIndex(topic: message.topic, base: base), bytes: message.payload.count)
        switch durability {
        case .mustBeSafe(let device, let source):
            let entry = SpoolEntry(
                topic: message.topic, payload: message.payload, retain: message.retain,
                correlationData: message.properties.correlationData, receivedAt: nowMs())
            outbox.send(entry, device: device, source: source, completion: completion)
        case .bestEffort(let qos, let device, let source):
            outbox.sendBestEffort(message, qos: qos, device: device, source: source, completion: completion)
        }
    }

    /// Publishes a device's message best effort at QoS 0, with nothing allocated for its answer in the usual case:
    /// the outcome is returned when the message went to libmosquitto at once (`Outbox.sendAtMostOnce`); otherwise
    /// nil, and the completion `later()` makes runs with it as for `publish`. `typeIndex` is its type in
    /// `GatewayMetrics.outTypes`: the caller knows it, so the topic is not read for it per message.
    func publishAtMostOnce(
        _ message: OutboundMessage, typeIndex: Int, device: String, source: any PublishSource, later: () -> PublishCompletion?
    ) -> PublishOutcome? {
        assert(typeIndex == GatewayMetrics.outTypeIndex(topic: message.topic, base: base))
        metrics.published(typeIndex: typeIndex, bytes: message.payload.count)
        return outbox.sendAtMostOnce(message, device: device, source: source, later: later)
    }

    /// Publishes best effort at QoS 1 and waits for the PUBACK, at most `timeout`; returns whether it came.
    func publishAndWait(_ message: OutboundMessage, timeout: Duration) async -> Bool {
        let outcome = AsyncStream<Bool>.makeStream()
        publish(message, .bestEffort(.atLeastOnce)) { outcome.continuation.yield($0 == .safe) }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            outcome.continuation.yield(false)
        }
        defer { timer.cancel() }
        for await confirmed in outcome.stream { return confirmed }
        return false
    }

    /// The gateway is resynchronised with the broker (`BrokerRouter.brokerConnected`): must-be-safe messages
    /// go out again and the spool is replayed.
    func connected() { outbox.brokerConnected() }

    /// The client connected, with libmosquitto's limit on unanswered publishes for this connection (the broker's
    /// Receive Maximum); the gateway resynchronises before `connected()` (best-effort messages may go).
    func linkUp(inflightLimit: Int) { outbox.brokerLinkUp(inflightLimit: inflightLimit) }

    /// The broker connection was lost.
    func disconnected() { outbox.brokerDisconnected() }
}
