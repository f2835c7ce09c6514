import GatehouseProtocol
import Mosquitto
import Synchronization

extension Gateway {
    /// Publishes the retained discovery messages of a held device (on connect, `hello`, broker reconnect and
    /// when Home Assistant comes online), including a sensor for every numeric telemetry key seen so far.
    func announceToHomeAssistant(_ device: String) {
        guard let discovery = homeAssistant else { return }
        for (topic, payload) in discoveryMessages(device, discovery) {
            publish(topic, payload.serialized(), retain: true)
        }
    }

    /// Every discovery message of a device: its entity, or a sensor per numeric telemetry key seen so far.
    private func discoveryMessages(_ device: String, _ discovery: HomeAssistantDiscovery) -> [(topic: String, payload: JSONValue)] {
        let meta = directory.meta(device)
        let keys = HomeAssistantDiscovery.hasSensors(meta) ? homeAssistantKeys.withLock { $0[device] ?? [] }.sorted() : []
        return discovery.entities(device: device, meta: meta) + keys.map { discovery.sensor(device, key: $0, meta: meta) }
    }

    /// A reload turned discovery on or off, or moved its prefix: the old entities are withdrawn (an empty
    /// retained config removes an entity from Home Assistant) and the held devices are announced anew.
    func homeAssistantChanged(from old: HomeAssistantDiscovery?, to new: HomeAssistantDiscovery?) {
        guard old?.prefix != new?.prefix else { return }
        let devices = directory.sessions.map(\.device)
        if let old {
            for device in devices {
                for (topic, _) in discoveryMessages(device, old) { publish(topic, [], retain: true) }
            }
        }
        guard let new else { return }
        // Kept by the client across reconnects, like the subscriptions made at start.
        Task { try? await broker.subscribe([new.statusTopic], qos: .atLeastOnce, identifier: Subscription.observed) }
        for device in devices { announceToHomeAssistant(device) }
    }

    /// A sensor entity for each numeric telemetry key not announced yet for this device.
    func discoverSensors(in data: JSONObject, of device: String) {
        guard let discovery = homeAssistant else { return }
        let meta = directory.meta(device)
        guard HomeAssistantDiscovery.hasSensors(meta) else { return }
        let numeric = data.compactMap { key, value -> String? in
            if case .number = value { return key }
            return nil
        }
        let fresh = homeAssistantKeys.withLock { known in
            let fresh = numeric.filter { !(known[device]?.contains($0) ?? false) }
            known[device, default: []].formUnion(fresh)
            return fresh
        }
        for key in fresh {
            let (topic, payload) = discovery.sensor(device, key: key, meta: meta)
            publish(topic, payload.serialized(), retain: true)
        }
    }

    /// `homeassistant/status` `online`: Home Assistant (re)started and needs the discovery messages again.
    func homeAssistantStatus(_ payload: [UInt8]) {
        guard String(decoding: payload, as: UTF8.self) == "online" else { return }
        for session in directory.sessions { announceToHomeAssistant(session.device) }
    }
}
