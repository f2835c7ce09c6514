import Dispatch
import GatehouseProtocol
import Logging
import Mosquitto

/// The gateway's side of what comes from the broker: the subscriptions (made once; the client repeats
/// them after every reconnect), the routing of each incoming message, and the announcements after every
/// (re)connect (bridge state, then the held devices' availability, meta and state).
///
/// Owns nothing but its wiring. Calls `DeviceDirectory` (mirrors), `DeviceHub` (announcements, takeovers),
/// `CommandRouter` (requests, queued commands), `BridgeOperations` and `HomeAssistantAnnouncer`.
final class BrokerRouter: Sendable {
    /// Subscription identifiers tell the two copies of a request apart (see `CommandRouter.RequestRoute`).
    enum Subscription {
        static let observed: UInt32 = 1
        static let holder: UInt32 = 2
        static let shared: UInt32 = 3
    }

    private let gatewayID: String
    private let topics: Topics
    private let link: BrokerLink
    private let directory: DeviceDirectory
    private let devices: DeviceHub
    private let commands: CommandRouter
    private let bridge: BridgeOperations
    private let homeAssistant: HomeAssistantAnnouncer
    private let desired: DesiredStateKeeper
    private let settings: SettingsStore
    private let readiness: Readiness
    private let reconciler: Reconciler
    private let logger: Logger
    /// Where the rare work that may take a while runs, one job at a time and bounded (see `SlowRequests`): `route`
    /// runs on the MQTT client's network thread, which reads and writes nothing meanwhile.
    private let slowRequests = SlowRequests()
    /// Home Assistant's rediscoveries start at least this far apart: each announces every held device again.
    static let rediscoverySpacing: Duration = .seconds(10)

    init(
        gatewayID: String, topics: Topics, link: BrokerLink, directory: DeviceDirectory, devices: DeviceHub, commands: CommandRouter,
        bridge: BridgeOperations, homeAssistant: HomeAssistantAnnouncer, desired: DesiredStateKeeper, settings: SettingsStore,
        readiness: Readiness, reconciler: Reconciler, logger: Logger
    ) {
        self.desired = desired
        self.gatewayID = gatewayID
        self.topics = topics
        self.link = link
        self.directory = directory
        self.devices = devices
        self.commands = commands
        self.bridge = bridge
        self.homeAssistant = homeAssistant
        self.settings = settings
        self.readiness = readiness
        self.reconciler = reconciler
        self.logger = logger
    }

    /// Subscribes (once), announces the gateway, waits until the broker has sent its retained documents
    /// again (the echo of that announcement), then lets the `Reconciler` decide the held devices'
    /// availability and state and starts the outbox (spool replay). Runs after every (re)connect;
    /// `generation` is the connection's (`connectionGeneration` when it was accepted): a resynchronisation
    /// that outlives its connection ends without deciding anything.
    func brokerConnected(generation: UInt64) async {
        if !readiness.hasSubscribed { await subscribeAll() }
        guard readiness.hasSubscribed else { return link.connected() }
        let online = BridgeState(state: .online, ts: nowMs(), version: Gateway.version)
        let echo = reconciler.awaitEcho(of: online.ts)
        let announcement = OutboundMessage(topic: topics.bridgeState(gatewayID), payload: online.encoded(), retain: true)
        let confirmed = await link.publishAndWait(announcement, timeout: .seconds(30))
        var echoed = false
        if confirmed {
            directory.observe(gateway: gatewayID, online: true)
            homeAssistant.announceGateway()
            // Bounded: without the echo (a broker that does not send our own messages back) decide with what came.
            echoed = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await _ in echo { return true }
                    return false
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(5))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
        } else {
            logger.error("the broker did not confirm the bridge state")
        }
        guard reconciler.reconcile(generation: generation, sawEveryRetained: echoed) else { return }
        link.connected()
        guard confirmed else { return }
        readiness.setBrokerReady(true)
        // Expiries that fell due while out of step with the broker are answered now (by whoever's turn it is).
        commands.sweepExpired()
        logger.info("connected to the broker at \(link.client.options.address), bridge state online")
    }

    /// Identifies the current broker connection (bumped by every lost one).
    var connectionGeneration: UInt64 { reconciler.generation }

    /// The broker connection was lost (from `BrokerService`).
    func brokerLost() {
        readiness.setBrokerReady(false)
        reconciler.brokerLost()
        link.disconnected()
    }

    private func subscribeAll() async {
        let client = link.client
        do {
            // Retain As Published: the mirrors take only retained messages (a plain publish there changes nothing).
            try await client.subscribe(
                [topics.allAvailability, topics.allMeta, topics.allState, topics.allPending, topics.allBridgeStates,
                 topics.allDesired, topics.allDelta],
                qos: .atLeastOnce, identifier: Subscription.observed, retainAsPublished: true)
            try await client.subscribe(
                [topics.bridgeRequests(gatewayID), topics.allDesiredSets], qos: .atLeastOnce, identifier: Subscription.observed)
            try await client.subscribe([topics.allRequests, topics.allSets], qos: .atLeastOnce, identifier: Subscription.holder)
            try await client.subscribe(
                [topics.shared("\(topics.base)/+/request/#"), topics.shared(topics.allSets)],
                qos: .atLeastOnce, identifier: Subscription.shared)
            if let discovery = settings.now.homeAssistant {
                try await client.subscribe([discovery.statusTopic], qos: .atLeastOnce, identifier: Subscription.observed)
            }
            readiness.setSubscribed()
        } catch {
            logger.error("cannot subscribe: \(error)")
        }
    }

    /// Routes one incoming MQTT message. Runs on the MQTT client's network thread (see `BrokerService`), in the
    /// order the messages arrived, so it must not block.
    func route(_ message: MQTTMessage) {
        if let discovery = settings.now.homeAssistant, message.topic == discovery.statusTopic {
            guard homeAssistant.isOnline(message.payload) else { return }
            return slowRequests.submit(.rediscovery, spacing: Self.rediscoverySpacing) { [homeAssistant] in homeAssistant.rediscover() }
        }
        guard let kind = topics.parse(message.topic) else { return }
        let ids = message.properties.subscriptionIdentifiers
        switch kind {
        case .availability, .meta, .state, .pending, .bridgeState:
            observeRetained(kind, message)
        // A retained request comes back at every subscribe: it was acted on when it was published (the subscriptions
        // do not keep the publisher's retain flag, so only such a replay has it).
        case .bridgeRequest(let gateway, let op) where gateway == gatewayID && !message.retain:
            if !slowRequests.submit({ [bridge] in bridge.handle(op: op, message: message) }) { bridge.refuseBusy(op: op, message: message) }
        case .request(let device, let command) where !message.retain:
            routeRequest(device: device, command: command, message: message, ids: ids, isSet: false)
        case .set(let device) where !message.retain:
            routeRequest(device: device, command: "set", message: message, ids: ids, isSet: true)
        case .desired(let device) where message.retain:
            desired.observeDesired(message.payload, of: device)
        case .delta(let device) where message.retain:
            desired.observeDelta(message.payload, of: device)
        case .desiredSet(let device) where !message.retain:
            desired.handleSet(device: device, message: message)
        default:
            break
        }
    }

    /// A message on a mirrored topic counts only when retained, and only when its payload is what the
    /// contract describes there; an empty one clears the document. Anything else changes nothing.
    private func observeRetained(_ kind: TopicKind, _ message: MQTTMessage) {
        guard message.retain else { return }
        let payload = message.payload
        let cleared = payload.isEmpty
        switch kind {
        case .availability(let device):
            let availability = Availability.decode(payload)
            guard cleared || availability != nil else { return ignoreUndecodable(message) }
            observeAvailability(availability, of: device)
        case .meta(let device):
            let meta = DeviceMeta.decode(payload)
            guard cleared || meta != nil else { return ignoreUndecodable(message) }
            directory.observe(meta: meta, of: device)
        case .state(let device):
            let document = StateDocument.decode(payload)
            guard cleared || document != nil else { return ignoreUndecodable(message) }
            reconciler.observedState(of: device, directory.observe(state: document, of: device))
            if cleared { desired.reportedStateCleared(of: device) }
        case .pending(let device, let commandID):
            commands.observePending(payload, device: device, id: commandID)
        case .bridgeState(let gateway):
            let bridgeState = BridgeState.decode(payload)
            guard cleared || bridgeState != nil else { return ignoreUndecodable(message) }
            if gateway == gatewayID, let bridgeState { reconciler.bridgeStateEchoed(ts: bridgeState.ts) }
            let online = bridgeState?.state == .online
            directory.observe(gateway: gateway, online: online)
            // Its queued commands may be ours to answer now.
            if !online, gateway != gatewayID { slowRequests.submit(.pendingSweep) { [commands] in commands.sweepExpired() } }
        default:
            break
        }
    }

    private func ignoreUndecodable(_ message: MQTTMessage) {
        logger.debug("ignored a retained message that is not what the contract describes", metadata: ["topic": "\(message.topic)"])
    }

    private func routeRequest(device: String, command: String, message: MQTTMessage, ids: [UInt32], isSet: Bool) {
        if ids.contains(Subscription.holder) {
            commands.handleRequest(device: device, command: command, message: message, route: .holder, isSet: isSet)
        }
        if ids.contains(Subscription.shared) {
            commands.handleRequest(device: device, command: command, message: message, route: .shared, isSet: isSet)
        }
    }

    /// Availability from the broker: a newer session elsewhere takes our device over; an `online` that
    /// names us for a device we do not hold is left from before a crash and is corrected.
    private func observeAvailability(_ availability: Availability?, of device: String) {
        // Our own `online` coming back from the broker after that session already ended here: not a leftover
        // from a crash. Its `offline` is on its way, or was refused while the broker was away and is owed now.
        if let availability, availability.state == .online, availability.gateway == gatewayID,
           let known = directory.availability(device), known.gateway == gatewayID, known.state == .offline,
           known.session == availability.session {
            devices.publishOwedOffline(device, session: availability.session)
            return
        }
        guard directory.observe(availability: availability, of: device) else {
            if let availability { reconciler.ignoredAvailability(availability, of: device) }
            return
        }
        guard let availability, availability.state == .online else { return }
        let held = directory.session(device)
        if availability.gateway != gatewayID {
            if let held, availability.session > held.number {
                held.close(.replaced, reason: .disconnected, text: "replaced by a newer connection on \(availability.gateway)")
            }
        } else if held == nil {
            devices.publishOffline(device, session: availability.session, reason: .gatewayRestart)
        }
    }
}
