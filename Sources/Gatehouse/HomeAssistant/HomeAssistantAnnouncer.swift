import GatehouseProtocol
import Logging
import Mosquitto
import Synchronization

/// Home Assistant MQTT discovery for the devices this gateway holds: their entities on connect, a `hello` that
/// changes what the device said of itself, broker reconnect and when Home Assistant comes online, a sensor per numeric telemetry key as keys
/// appear, and withdrawal when a reload turns discovery off or moves its prefix.
///
/// Owns the keys announced per device. Calls `BrokerLink`; reads `DeviceDirectory` and `SettingsStore`.
final class HomeAssistantAnnouncer: Sendable {
    private let link: BrokerLink
    private let directory: DeviceDirectory
    private let settings: SettingsStore
    /// At most this many numeric telemetry keys of one device become sensors, so a device inventing keys
    /// cannot fill the broker with retained discovery configs. Later new keys are still published as
    /// telemetry, with no sensor; the first one refused is logged.
    static let maxSensorsPerDevice = 1000
    /// A key longer than this (in bytes) gets no sensor either: the keys are kept for every held device, and each
    /// becomes part of a topic and an entity id.
    static let maxSensorKeyBytes = 64

    private struct AnnouncedKeys {
        var keys: Set<String> = []
        var limitLogged = false
    }

    /// Numeric telemetry keys announced, by device.
    private let announced = Mutex<[String: AnnouncedKeys]>([:])
    private let logger: Logger

    init(link: BrokerLink, directory: DeviceDirectory, settings: SettingsStore, logger: Logger) {
        self.link = link
        self.directory = directory
        self.settings = settings
        self.logger = logger
    }

    /// Publishes the retained discovery messages of a held device, with every numeric key seen so far.
    func announce(_ device: String) {
        guard let discovery = settings.now.homeAssistant else { return }
        for (topic, payload) in discoveryMessages(device, discovery) {
            publishRetained(topic, payload.serialized())
        }
    }

    /// The gateway's own device and connectivity entity (after every broker connect and Home Assistant start).
    func announceGateway() {
        guard let discovery = settings.now.homeAssistant else { return }
        let (topic, payload) = discovery.gatewayEntity()
        publishRetained(topic, payload.serialized())
    }

    /// A sensor entity for each numeric telemetry key not announced yet for this device.
    func discoverSensors(in data: JSONObject, of device: String, _ discovery: HomeAssistantDiscovery) {
        let numeric = data.compactMap { key, value -> String? in
            if case .number = value, key.utf8.count <= Self.maxSensorKeyBytes { return key }
            return nil
        }
        let (fresh, reachedLimit) = announced.withLock { all in
            var entry = all[device] ?? AnnouncedKeys()
            var fresh: [String] = []
            var reachedLimit = false
            for key in numeric where !entry.keys.contains(key) {
                guard entry.keys.count < Self.maxSensorsPerDevice else {
                    reachedLimit = !entry.limitLogged
                    entry.limitLogged = true
                    break
                }
                entry.keys.insert(key)
                fresh.append(key)
            }
            all[device] = entry
            return (fresh, reachedLimit)
        }
        if reachedLimit {
            logger.warning(
                "device has \(Self.maxSensorsPerDevice) Home Assistant sensors; its new telemetry keys get none",
                metadata: ["device": "\(device)"])
        }
        guard !fresh.isEmpty else { return }
        let meta = directory.meta(device)
        guard HomeAssistantDiscovery.hasSensors(meta) else { return }
        for key in fresh {
            let (topic, payload) = discovery.sensor(device, key: key, meta: meta)
            publishRetained(topic, payload.serialized())
        }
    }

    /// A reload turned discovery on or off, or moved its prefix: the old entities are withdrawn (an empty
    /// retained config removes an entity from Home Assistant) and the held devices are announced anew.
    func changed(from old: HomeAssistantDiscovery?, to new: HomeAssistantDiscovery?) {
        guard old?.prefix != new?.prefix else { return }
        let devices = directory.sessions.map(\.device)
        if let old {
            publishRetained(old.gatewayEntity().topic, [])
            for device in devices {
                for (topic, _) in discoveryMessages(device, old) { publishRetained(topic, []) }
            }
        }
        guard let new else { return }
        // Kept by the client across reconnects, like the subscriptions made at start.
        Task { try? await link.client.subscribe([new.statusTopic], qos: .atLeastOnce, identifier: BrokerRouter.Subscription.observed) }
        announceGateway()
        for device in devices { announce(device) }
    }

    /// Whether a `homeassistant/status` payload says Home Assistant (re)started and needs the discovery messages again.
    func isOnline(_ payload: [UInt8]) -> Bool {
        String(decoding: payload, as: UTF8.self) == Presence.online.rawValue
    }

    /// Announces the gateway and every held device again (Home Assistant came online).
    func rediscover() {
        announceGateway()
        for session in directory.sessions { announce(session.device) }
    }

    /// Every discovery message of a device: its entity, or a sensor per numeric telemetry key seen so far.
    private func discoveryMessages(_ device: String, _ discovery: HomeAssistantDiscovery) -> [(topic: String, payload: JSONValue)] {
        let meta = directory.meta(device)
        let keys = HomeAssistantDiscovery.hasSensors(meta) ? announced.withLock { $0[device]?.keys ?? [] }.sorted() : []
        return discovery.entities(device: device, meta: meta) + keys.map { discovery.sensor(device, key: $0, meta: meta) }
    }

    private func publishRetained(_ topic: String, _ payload: [UInt8]) {
        link.publish(OutboundMessage(topic: topic, payload: payload, retain: true), .bestEffort(.atLeastOnce))
    }
}
