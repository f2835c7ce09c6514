/// What a device declared it accepts (`hello.capabilities`), used to refuse bad commands before delivery.
public struct Capabilities: Sendable, Equatable {
    private let commands: JSONObject?
    private let state: JSONObject?

    /// Reads `{"commands": {...}, "state": {...}}`; anything it cannot understand is ignored.
    public init(_ json: JSONObject?) {
        self.commands = json?["commands"]?.objectValue
        self.state = json?["state"]?.objectValue
    }

    /// Whether the device declared the keys of its desired state (without them, any key is accepted).
    public var declaresState: Bool { state != nil }

    /// The declared rule of a desired-state key (`capabilities.state.<key>`), if any.
    public func stateRule(_ key: String) -> JSONObject? { state?[key]?.objectValue }

    /// Checks a desired-state patch (PROTOCOL.md 7) against `capabilities.state`: every key it sets must be
    /// declared and keep its rule (`type`, `minimum`, `maximum`, `enum`; `required` does not apply). `null`
    /// is always allowed, for declared and undeclared keys alike, so a stale key can always be removed.
    public func check(statePatch patch: JSONObject) -> CapabilityCheck {
        guard let state else { return .accepted }
        for (key, value) in patch where !value.isNull {
            guard let declared = state[key] else { return .badParams("the device does not accept state key \(key)") }
            if let rule = declared.objectValue, let problem = Self.problem(with: value, rule: rule) {
                return .badParams("state key \(key) \(problem)")
            }
        }
        return .accepted
    }

    /// Whether the device declared a command list (without one, every command is accepted unchecked).
    public var declaresCommands: Bool { commands != nil }

    /// Checks a command and its params against the declaration.
    public func check(command: String, params: JSONObject) -> CapabilityCheck {
        guard let commands else { return .accepted }
        guard let declaration = commands[command]?.objectValue else {
            return .unknownCommand("the device does not accept command \(command)")
        }
        let declared = declaration["params"]?.objectValue ?? JSONObject()
        for (name, _) in params where declared[name] == nil {
            return .badParams("unknown param \(name)")
        }
        for (name, rule) in declared {
            guard let rule = rule.objectValue else { continue }
            guard let value = params[name] else {
                if rule["required"]?.boolValue ?? true { return .badParams("missing required param \(name)") }
                continue
            }
            if let problem = Self.problem(with: value, rule: rule) {
                return .badParams("param \(name) \(problem)")
            }
        }
        return .accepted
    }

    private static func problem(with value: JSONValue, rule: JSONObject) -> String? {
        if let type = rule["type"]?.stringValue {
            let fits: Bool = switch type {
            case "number": value.numberValue != nil
            case "integer": value.numberValue?.isInteger ?? false
            case "string": value.stringValue != nil
            case "boolean": value.boolValue != nil
            case "object": value.objectValue != nil
            default: true
            }
            if !fits { return "must be of type \(type)" }
        }
        if let number = value.numberValue?.doubleValue {
            if let minimum = rule["minimum"]?.numberValue?.doubleValue, number < minimum {
                return "must be at least \(rule["minimum"]!.serializedString())"
            }
            if let maximum = rule["maximum"]?.numberValue?.doubleValue, number > maximum {
                return "must be at most \(rule["maximum"]!.serializedString())"
            }
        }
        if let allowed = rule["enum"]?.arrayValue, !allowed.contains(where: { $0.isEquivalent(to: value) }) {
            return "must be one of \(JSONValue.array(allowed).serializedString())"
        }
        return nil
    }
}

/// The outcome of `Capabilities.check`.
public enum CapabilityCheck: Sendable, Equatable {
    /// The command may be delivered.
    case accepted
    /// The device declared commands and this is not one of them.
    case unknownCommand(String)
    /// A param is missing, unknown, or breaks its rule; the message names it.
    case badParams(String)
}
