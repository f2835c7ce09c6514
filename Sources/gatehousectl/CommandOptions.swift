import ArgumentParser
import GatehouseProtocol

/// Options shared by `send` and `set`: how long the gateway may take and how long the command may wait for an
/// offline device.
struct CommandOptions: ParsableArguments {
    /// Parameters as a JSON object; `key=value` arguments override its keys.
    @Option(
        help: ArgumentHelp("Parameters as a JSON object; key=value arguments override its keys.", valueName: "json")
    )
    var params: String?

    /// The command's `timeout_ms`.
    @Option(help: "How long the gateway waits for the device's answer once delivered (timeout_ms).")
    var timeout = DurationArgument(milliseconds: 10_000)

    /// The command's `ttl_ms`.
    @Option(help: "How long the command may wait for an offline device to connect (ttl_ms); 0 = answer offline.")
    var ttl = DurationArgument(milliseconds: 0)

    /// The command id.
    @Option(help: "Command id (default: a random ctl-<hex> id).")
    var id: String?

    /// Keep waiting after `queued`.
    @Flag(help: "With --ttl, keep waiting after 'queued' until the final response (or timeout + ttl + 5s).")
    var waitFinal = false

    /// Checks the option values.
    func validate() throws {
        guard timeout.milliseconds > 0 else { throw ValidationError("--timeout must be greater than 0") }
        if let id, !Identifiers.isValidCommandID(id) {
            throw ValidationError("invalid --id '\(id)': use 1-128 of A-Z a-z 0-9 . _ : -")
        }
    }
}

/// Turns `key=value` arguments into a JSON object.
///
/// Values: `21.5` and other JSON numbers become numbers, `true`/`false` booleans, `null` null, text that parses
/// as a JSON object, array or string (`'"21"'`) that value; anything else is a string (`007` stays a string).
enum ParamArguments {
    /// The merged parameters: `--params` first, then each `key=value` in order.
    static func parse(_ pairs: [String], json: String?) throws -> JSONObject {
        var params = JSONObject()
        if let json {
            guard let value = try? JSONValue(parsing: json), let object = value.objectValue else {
                throw CtlError.usage("--params must be a JSON object, e.g. '{\"celsius\":21.5}'")
            }
            params = object
        }
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw CtlError.usage("expected key=value, got '\(pair)'")
            }
            let key = String(pair[..<equals])
            let text = String(pair[pair.index(after: equals)...])
            params[key] = value(text)
        }
        return params
    }

    /// The JSON value a command-line value stands for.
    static func value(_ text: String) -> JSONValue {
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null": return .null
        default: break
        }
        if let number = JSONNumber(text: text) { return .number(number) }
        if let first = text.first, first == "{" || first == "[" || first == "\"",
            let value = try? JSONValue(parsing: text)
        {
            return value
        }
        return .string(text)
    }
}
