import Foundation
import GatehouseProtocol

/// Home Assistant MQTT discovery payloads (PROTOCOL.md section 6): thermostats as `climate`, cameras as
/// `camera`, every other device as one `sensor` per numeric telemetry key. Each entity is available only
/// while both the device and its gateway are online (`availability_mode: all`).
///
/// Thermostats are expected to follow the simulator's conventions: telemetry `temperature`, state
/// `setpoint` and `mode`, commands `set_setpoint {celsius}` and `set_mode {mode}`.
struct HomeAssistantDiscovery {
    let prefix: String
    let gateway: String
    let topics: Topics

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
            return [("\(prefix)/camera/\(id)/config", .object(config))]
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
        return ("\(prefix)/sensor/\(id)/config", .object(config))
    }

    private func climate(_ device: String, id: String, meta: DeviceMeta?) -> JSONValue {
        var config = common(device, id: id, meta: meta)
        let state = topics.state(device)
        config["current_temperature_topic"] = .string(topics.telemetry(device))
        config["current_temperature_template"] = "{{ value_json.data.temperature }}"
        config["temperature_state_topic"] = .string(state)
        config["temperature_state_template"] = "{{ value_json.data.setpoint }}"
        config["temperature_command_topic"] = .string(topics.request(device, "set_setpoint"))
        config["temperature_command_template"] = "{\"params\":{\"celsius\":{{ value }}}}"
        config["mode_state_topic"] = .string(state)
        config["mode_state_template"] = "{{ value_json.data.mode }}"
        config["mode_command_topic"] = .string(topics.request(device, "set_mode"))
        config["mode_command_template"] = "{\"params\":{\"mode\":\"{{ value }}\"}}"
        config["temperature_unit"] = "C"
        let commands = meta?.capabilities?["commands"]?.objectValue
        let celsius = commands?["set_setpoint"]?.objectValue?["params"]?.objectValue?["celsius"]?.objectValue
        if let minimum = celsius?["minimum"], case .number = minimum { config["min_temp"] = minimum }
        if let maximum = celsius?["maximum"], case .number = maximum { config["max_temp"] = maximum }
        let modes = commands?["set_mode"]?.objectValue?["params"]?.objectValue?["mode"]?.objectValue?["enum"]?.arrayValue
        config["modes"] = .array(modes ?? ["off", "heat", "auto"])
        return .object(config)
    }

    /// What every entity has: ids, the device card, and availability from both device and gateway.
    private func common(_ device: String, id: String, meta: DeviceMeta?) -> JSONObject {
        var card = JSONObject()
        card["identifiers"] = .array([.string("gatehouse_\(device)")])
        card["name"] = .string(device)
        card["manufacturer"] = "Gatehouse"
        if let model = meta?.model { card["model"] = .string(model) }
        if let firmware = meta?.firmware { card["sw_version"] = .string(firmware) }
        card["via_device"] = .string("gatehouse_gateway_\(gateway)")
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
