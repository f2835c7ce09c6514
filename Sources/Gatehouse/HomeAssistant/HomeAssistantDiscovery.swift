import Foundation
import GatehouseProtocol

/// Home Assistant MQTT discovery payloads (PROTOCOL.md section 6): thermostats as `climate`, cameras as
/// `camera`, every other device as one `sensor` per numeric telemetry key. Each entity is available only
/// while both the device and its gateway are online (`availability_mode: all`).
///
/// Thermostats are expected to follow the simulator's conventions: telemetry `temperature` and `heating`, state
/// `setpoint` and `mode`. A thermostat that declares `setpoint` (or `mode`) in `capabilities.state` is set through
/// its desired state (PROTOCOL.md 7: `desired/set`, applied when it wakes); otherwise through the commands
/// `set_setpoint {celsius}` and `set_mode {mode}`. The gateway itself is a device with a connectivity
/// `binary_sensor`, so the `via_device` of every device card links to it.
struct HomeAssistantDiscovery {
    let prefix: String
    let gateway: String
    let topics: Topics
    /// `homeassistant.retain_snapshots`: the camera entity shows the last snapshot after a Home Assistant restart.
    var retainSnapshots = false

    /// `homeassistant/status`: Home Assistant announces `online` when it (re)starts.
    var statusTopic: String { "\(prefix)/status" }

    /// The discovery messages (topic, retained payload) for a device of `meta.kind`; sensors get theirs
    /// per telemetry key from `sensor(_:key:meta:)`.
    func entities(device: String, meta: DeviceMeta?) -> [(topic: String, payload: JSONValue)] {
        let id = Identifiers.objectID("\(gateway)_\(device)")
        switch meta?.kind {
        case DeviceKind.thermostat?:
            return [("\(prefix)/climate/\(id)/config", climate(device, id: id, meta: meta))]
        case DeviceKind.camera?:
            var config = common(device, id: id, meta: meta)
            config["topic"] = .string(topics.media(device, "snapshot"))
            return [("\(prefix)/camera/\(id)/config", .object(config)), snapshotButton(device, meta: meta)]
        default:
            return []
        }
    }

    /// Whether telemetry keys of this device become sensor entities.
    static func hasSensors(_ meta: DeviceMeta?) -> Bool {
        meta?.kind != DeviceKind.thermostat && meta?.kind != DeviceKind.camera
    }

    /// A sensor entity for one numeric telemetry key.
    func sensor(_ device: String, key: String, meta: DeviceMeta?) -> (topic: String, payload: JSONValue) {
        let id = Identifiers.objectID("\(gateway)_\(device)_\(key)")
        var config = common(device, id: id, meta: meta)
        config["name"] = .string(key)
        config["state_topic"] = .string(topics.telemetry(device))
        config["value_template"] = .string("{{ value_json.data[\(quoted(key))] }}")
        config["state_class"] = "measurement"
        if let unit = meta?.capabilities?["telemetry"]?.objectValue?[key]?.objectValue?["unit"]?.stringValue {
            config["unit_of_measurement"] = .string(unit)
        }
        if let deviceClass = Self.sensorClasses[key.lowercased()] { config["device_class"] = .string(deviceClass) }
        return ("\(prefix)/sensor/\(id)/config", .object(config))
    }

    private func climate(_ device: String, id: String, meta: DeviceMeta?) -> JSONValue {
        var config = common(device, id: id, meta: meta)
        let state = topics.state(device)
        let capabilities = Capabilities(meta?.capabilities)
        let commands = meta?.capabilities?["commands"]?.objectValue
        config["current_temperature_topic"] = .string(topics.telemetry(device))
        config["current_temperature_template"] = "{{ value_json.data.temperature }}"
        config["temperature_state_topic"] = .string(state)
        config["temperature_state_template"] = "{{ value_json.data.setpoint }}"
        let setpoint: JSONObject?
        if let rule = capabilities.stateRule("setpoint") {
            setpoint = rule
            config["temperature_command_topic"] = .string(topics.desiredSet(device))
            config["temperature_command_template"] = "{\"data\":{\"setpoint\":{{ value }}}}"
        } else {
            setpoint = commands?["set_setpoint"]?.objectValue?["params"]?.objectValue?["celsius"]?.objectValue
            config["temperature_command_topic"] = .string(topics.request(device, "set_setpoint"))
            config["temperature_command_template"] = "{\"params\":{\"celsius\":{{ value }}}}"
        }
        config["mode_state_topic"] = .string(state)
        config["mode_state_template"] = "{{ value_json.data.mode }}"
        let modes: [JSONValue]?
        if let rule = capabilities.stateRule("mode") {
            modes = rule["enum"]?.arrayValue
            config["mode_command_topic"] = .string(topics.desiredSet(device))
            config["mode_command_template"] = "{\"data\":{\"mode\":\"{{ value }}\"}}"
        } else {
            modes = commands?["set_mode"]?.objectValue?["params"]?.objectValue?["mode"]?.objectValue?["enum"]?.arrayValue
            config["mode_command_topic"] = .string(topics.request(device, "set_mode"))
            config["mode_command_template"] = "{\"params\":{\"mode\":\"{{ value }}\"}}"
        }
        config["action_topic"] = .string(topics.telemetry(device))
        config["action_template"] = "{{ 'heating' if value_json.data.heating else 'idle' }}"
        config["temperature_unit"] = "C"
        // The device takes any value in its range: without these the UI would move the setpoint in whole degrees.
        let step: JSONValue = setpoint?["type"]?.stringValue == "integer" ? 1 : 0.1
        config["temp_step"] = step
        config["precision"] = step
        if let minimum = setpoint?["minimum"], case .number = minimum { config["min_temp"] = minimum }
        if let maximum = setpoint?["maximum"], case .number = maximum { config["max_temp"] = maximum }
        // Home Assistant refuses the whole entity for a mode it does not know: only its own modes are offered.
        let known = modes?.filter { $0.stringValue.map(Self.climateModes.contains) ?? false } ?? []
        config["modes"] = .array(known.isEmpty ? ["off", "heat", "auto"] : known)
        return .object(config)
    }

    /// A button that asks the camera for a snapshot (after a Home Assistant restart the camera entity is empty
    /// until one arrives).
    private func snapshotButton(_ device: String, meta: DeviceMeta?) -> (topic: String, payload: JSONValue) {
        let id = Identifiers.objectID("\(gateway)_\(device)_snapshot")
        var config = common(device, id: id, meta: meta)
        config["name"] = "Snapshot"
        config["command_topic"] = .string(topics.request(device, "snapshot"))
        config["payload_press"] = "{}"
        config["icon"] = "mdi:camera"
        return ("\(prefix)/button/\(id)/config", .object(config))
    }

    /// The gateway as a device of its own: a connectivity sensor on its bridge state. Every device card names it
    /// as `via_device`.
    func gatewayEntity() -> (topic: String, payload: JSONValue) {
        let id = Identifiers.objectID("\(gateway)_gateway")
        var card = JSONObject()
        card["identifiers"] = .array([.string(gatewayIdentifier)])
        card["name"] = .string("Gatehouse \(gateway)")
        card["manufacturer"] = "Gatehouse"
        card["model"] = "Gatehouse gateway"
        card["sw_version"] = .string(GatehouseVersion.current)
        var config = JSONObject()
        config["unique_id"] = .string(id)
        config["object_id"] = .string(id)
        config["name"] = "Connectivity"
        config["device"] = .object(card)
        config["device_class"] = "connectivity"
        config["entity_category"] = "diagnostic"
        config["state_topic"] = .string(topics.bridgeState(gateway))
        config["value_template"] = "{{ value_json.state }}"
        config["payload_on"] = "online"
        config["payload_off"] = "offline"
        return ("\(prefix)/binary_sensor/\(id)/config", .object(config))
    }

    /// The HVAC modes Home Assistant's climate entity accepts.
    static let climateModes: Set<String> = ["off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only"]

    /// Home Assistant sensor device classes of well-known telemetry keys (units convert, icons fit).
    static let sensorClasses = ["temperature": "temperature", "humidity": "humidity", "co2": "carbon_dioxide",
                                "carbon_dioxide": "carbon_dioxide", "pressure": "pressure", "battery": "battery"]

    private var gatewayIdentifier: String { "gatehouse_gateway_\(gateway)" }

    /// What every entity has: ids, the device card, and availability from both device and gateway.
    private func common(_ device: String, id: String, meta: DeviceMeta?) -> JSONObject {
        var card = JSONObject()
        card["identifiers"] = .array([.string("gatehouse_\(device)")])
        card["name"] = .string(device)
        card["manufacturer"] = "Gatehouse"
        if let model = meta?.model { card["model"] = .string(model) }
        if let firmware = meta?.firmware { card["sw_version"] = .string(firmware) }
        card["via_device"] = .string(gatewayIdentifier)
        var config = JSONObject()
        config["unique_id"] = .string(id)
        config["object_id"] = .string(id)
        config["name"] = .null
        config["device"] = .object(card)
        config["availability_mode"] = "all"
        config["availability"] = .array([
            availability(topics.availability(device)),
            availability(topics.bridgeState(gateway)),
        ])
        return config
    }

    private func availability(_ topic: String) -> JSONValue {
        ["topic": .string(topic), "value_template": "{{ value_json.state }}", "payload_available": "online", "payload_not_available": "offline"]
    }

    private func quoted(_ key: String) -> String {
        "'" + key.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
