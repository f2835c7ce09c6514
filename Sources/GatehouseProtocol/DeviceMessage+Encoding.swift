extension DeviceMessage {
    /// The message as a JSON object: `{"type":...,"seq":...,...}` (device side).
    public func json() -> JSONObject {
        var object = JSONObject()
        switch body {
        case .hello:
            object["type"] = "hello"
        case .telemetry:
            object["type"] = "telemetry"
        case .state:
            object["type"] = "state"
        case .event:
            object["type"] = "event"
        case .response:
            object["type"] = "response"
        }
        if let seq {
            object["seq"] = .number(seq)
        }
        switch body {
        case .hello(let hello):
            if let kind = hello.kind { object["kind"] = .string(kind) }
            if let model = hello.model { object["model"] = .string(model) }
            if let firmware = hello.firmware { object["firmware"] = .string(firmware) }
            if let capabilities = hello.capabilities { object["capabilities"] = .object(capabilities) }
        case .telemetry(let data, let ts, let qos):
            object["data"] = .object(data.object)
            if let ts { object["ts"] = .number(ts) }
            if let qos { object["qos"] = .number(qos) }
        case .state(let data):
            object["data"] = .object(data)
        case .event(let name, let data, let ts):
            object["name"] = .string(name)
            object["data"] = data
            if let ts { object["ts"] = .number(ts) }
        case .response(let id, let status, let data, let error):
            object["id"] = id.json
            object["status"] = .string(status.rawValue)
            object["data"] = data
            if let error { object["error"] = .object(error) }
        }
        return object
    }

    /// The message as compact JSON bytes, ready for a text frame.
    public func encoded() -> [UInt8] {
        json().serialized()
    }

    /// The message as a compact JSON string, ready for a text frame.
    public func encodedString() -> String {
        String(decoding: encoded(), as: UTF8.self)
    }
}
