/// What an MQTT topic under the base is, with the ids and names it carries.
public enum TopicKind: Sendable, Equatable {
    /// `<base>/<dev>/telemetry`.
    case telemetry(device: String)
    /// `<base>/<dev>/state`.
    case state(device: String)
    /// `<base>/<dev>/meta`.
    case meta(device: String)
    /// `<base>/<dev>/availability`.
    case availability(device: String)
    /// `<base>/<dev>/event/<name>`.
    case event(device: String, name: String)
    /// `<base>/<dev>/media/<stream>`.
    case media(device: String, stream: String)
    /// `<base>/<dev>/request/<command>`.
    case request(device: String, command: String)
    /// `<base>/<dev>/set`.
    case set(device: String)
    /// `<base>/<dev>/response/<command>`.
    case response(device: String, command: String)
    /// `<base>/<dev>/pending/<id>`.
    case pending(device: String, id: String)
    /// `<base>/<dev>/desired` (retained desired document, PROTOCOL.md 7).
    case desired(device: String)
    /// `<base>/<dev>/desired/set` (a patch of the desired document).
    case desiredSet(device: String)
    /// `<base>/<dev>/delta` (retained: what the reported state does not match yet).
    case delta(device: String)
    /// `<base>/bridge/<gw>/state`.
    case bridgeState(gateway: String)
    /// `<base>/bridge/<gw>/health`.
    case bridgeHealth(gateway: String)
    /// `<base>/bridge/<gw>/request/<op>`.
    case bridgeRequest(gateway: String, op: String)
    /// `<base>/bridge/<gw>/response/<op>`.
    case bridgeResponse(gateway: String, op: String)
}

extension Topics {
    /// What an incoming topic is; `nil` for anything not under this base or malformed.
    ///
    /// Device ids must pass ``Identifiers/isValidDeviceID(_:)``, gateway ids
    /// ``Identifiers/isValidGatewayID(_:)``, event and stream names
    /// ``Identifiers/isValidEventName(_:)``, pending ids ``Identifiers/isValidCommandID(_:)``.
    /// Command names and bridge operations only need to be non-empty, so that the gateway can
    /// answer an unknown one with `unknown_command` / `unknown_op` instead of ignoring it.
    public func parse(_ topic: String) -> TopicKind? {
        let prefix = base.utf8.count + 1
        guard topic.utf8.count > prefix,
            topic.utf8.starts(with: base.utf8),
            topic.utf8.dropFirst(prefix - 1).first == UInt8(ascii: "/"),
            let rest = String(topic.utf8.dropFirst(prefix))
        else { return nil }
        let levels = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if levels[0] == "bridge" {
            return Self.parseBridge(levels)
        }
        let device = levels[0]
        guard Identifiers.isValidDeviceID(device) else { return nil }
        switch levels.count {
        case 2:
            switch levels[1] {
            case "telemetry": return .telemetry(device: device)
            case "state": return .state(device: device)
            case "meta": return .meta(device: device)
            case "availability": return .availability(device: device)
            case "set": return .set(device: device)
            case "desired": return .desired(device: device)
            case "delta": return .delta(device: device)
            default: return nil
            }
        case 3:
            let name = levels[2]
            switch levels[1] {
            case "event": return Identifiers.isValidEventName(name) ? .event(device: device, name: name) : nil
            case "media": return Identifiers.isValidEventName(name) ? .media(device: device, stream: name) : nil
            case "request": return name.isEmpty ? nil : .request(device: device, command: name)
            case "response": return name.isEmpty ? nil : .response(device: device, command: name)
            case "pending": return Identifiers.isValidCommandID(name) ? .pending(device: device, id: name) : nil
            case "desired": return name == "set" ? .desiredSet(device: device) : nil
            default: return nil
            }
        default:
            return nil
        }
    }

    private static func parseBridge(_ levels: [String]) -> TopicKind? {
        guard levels.count >= 3, Identifiers.isValidGatewayID(levels[1]) else { return nil }
        let gateway = levels[1]
        switch (levels.count, levels[2]) {
        case (3, "state"): return .bridgeState(gateway: gateway)
        case (3, "health"): return .bridgeHealth(gateway: gateway)
        case (4, "request"): return levels[3].isEmpty ? nil : .bridgeRequest(gateway: gateway, op: levels[3])
        case (4, "response"): return levels[3].isEmpty ? nil : .bridgeResponse(gateway: gateway, op: levels[3])
        default: return nil
        }
    }
}
