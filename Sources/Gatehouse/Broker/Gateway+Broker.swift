import Logging
import GatehouseProtocol
import Mosquitto
import NIOCore

extension Gateway {
    /// Subscription identifiers tell the two copies of a request apart (see `RequestRoute`).
    enum Subscription {
        static let observed: UInt32 = 1
        static let holder: UInt32 = 2
        static let shared: UInt32 = 3
    }

    /// Subscribes to everything the gateway follows (once: the client repeats remembered subscriptions
    /// itself after every reconnect, ahead of anything published), then announces itself and its devices.
    /// Runs after every (re)connect. The bridge state's PUBACK also confirms the subscriptions: the broker
    /// answers one connection's packets in order.
    func brokerConnected() async {
        if !hasSubscribed { await subscribeAll() }
        guard hasSubscribed else { return }
        let online = BridgeState(state: "online", ts: nowMs(), version: version)
        guard await publishAndWait(topics.bridgeState(id), online.encoded(), retain: true, timeout: .seconds(30)) else {
            logger.error("the broker did not confirm the bridge state")
            return
        }
        directory.observe(gateway: id, online: true)
        for session in directory.sessions {
            announce(session)
            // On the device's event loop, so a state patch being handled cannot be overtaken by an older
            // document; through the outbox, so it also comes after older versions still spooled.
            session.channel.eventLoop.execute { [self] in
                let device = session.device
                if let meta = directory.meta(device) { publishSafely(topics.meta(device), meta.encoded(), of: device, retain: true) }
                if let state = directory.stateDocument(device) { publishSafely(topics.state(device), state.encoded(), of: device, retain: true) }
                announceToHomeAssistant(device)
            }
        }
        outbox.scheduleReplay()
        setBrokerReady(true)
        logger.info("connected to the broker at \(broker.options.address), bridge state online")
    }

    private func subscribeAll() async {
        do {
            try await broker.subscribe(
                [topics.allAvailability, topics.allMeta, topics.allState, topics.allPending, topics.allBridgeStates,
                 topics.bridgeRequests(id)],
                qos: .atLeastOnce, identifier: Subscription.observed)
            try await broker.subscribe([topics.allRequests, topics.allSets], qos: .atLeastOnce, identifier: Subscription.holder)
            try await broker.subscribe(
                [topics.shared("\(topics.base)/+/request/#"), topics.shared(topics.allSets)],
                qos: .atLeastOnce, identifier: Subscription.shared)
            if let homeAssistant {
                try await broker.subscribe([homeAssistant.statusTopic], qos: .atLeastOnce, identifier: Subscription.observed)
            }
            setSubscribed()
        } catch {
            logger.error("cannot subscribe: \(error)")
        }
    }

    /// Routes one incoming MQTT message.
    func brokerMessage(_ message: MQTTMessage) {
        if let homeAssistant, message.topic == homeAssistant.statusTopic { return homeAssistantStatus(message.payload) }
        guard let kind = topics.parse(message.topic) else { return }
        let ids = message.properties.subscriptionIdentifiers
        switch kind {
        case .availability(let device):
            observeAvailability(Availability.decode(message.payload), of: device)
        case .meta(let device):
            directory.observe(meta: DeviceMeta.decode(message.payload), of: device)
        case .state(let device):
            directory.observe(state: StateDocument.decode(message.payload), of: device)
        case .pending(let device, let commandID):
            let command = message.payload.isEmpty ? nil : PendingCommand(device: device, payload: message.payload)
            // Every gateway times every queued command, so expiry is answered even if the one that queued it is gone.
            if pending.observe(command, device: device, id: commandID), let command { scheduleExpiry(of: command) }
        case .bridgeState(let gateway):
            directory.observe(gateway: gateway, online: BridgeState.decode(message.payload)?.state == "online")
        case .bridgeRequest(let gateway, let op) where gateway == id:
            handleBridgeRequest(op: op, message: message)
        case .request(let device, let command):
            routeRequest(device: device, command: command, message: message, ids: ids, isSet: false)
        case .set(let device):
            routeRequest(device: device, command: "set", message: message, ids: ids, isSet: true)
        default:
            break
        }
    }

    private func routeRequest(device: String, command: String, message: MQTTMessage, ids: [UInt32], isSet: Bool) {
        if ids.contains(Subscription.holder) {
            handleRequest(device: device, command: command, message: message, route: .holder, isSet: isSet)
        }
        if ids.contains(Subscription.shared) {
            handleRequest(device: device, command: command, message: message, route: .shared, isSet: isSet)
        }
    }

    /// Availability from the broker: a newer session elsewhere takes our device over; an `online` that
    /// names us for a device we do not hold is left from before a crash and is corrected.
    private func observeAvailability(_ availability: Availability?, of device: String) {
        directory.observe(availability: availability, of: device)
        guard let availability, availability.state == "online" else { return }
        let held = directory.session(device)
        if availability.gateway != id {
            if let held, availability.session > held.session {
                held.close(.replaced, reason: .disconnected, text: "replaced by a newer connection on \(availability.gateway)")
            }
        } else if held == nil {
            publishOffline(device, session: availability.session, reason: .gatewayRestart)
        }
    }
}
