import GatehouseProtocol
import Mosquitto
import Synchronization

extension Gateway {
    /// Publishes the retained discovery messages of a held device (on connect, `hello`, broker reconnect and
    /// when Home Assistant comes online), including a sensor for every numeric telemetry key seen so far.
    func announceToHomeAssistant(_ device: String) {
        guard let discovery = homeAssistant else { return }
        let meta = directory.meta(device)
        for (topic, payload) in discovery.entities(device: device, meta: meta) {
            publish(topic, payload.serialized(), retain: true)
        }
        guard HomeAssistantDiscovery.hasSensors(meta) else { return }
        for key in homeAssistantKeys.withLock({ $0[device] ?? [] }).sorted() {
            let (topic, payload) = discovery.sensor(device, key: key, meta: meta)
            publish(topic, payload.serialized(), retain: true)
        }
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
