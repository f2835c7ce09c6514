/// One text frame from a device to the gateway: an optional `seq` and a typed body.
public struct DeviceMessage: Sendable, Equatable {
    /// The sequence number that asks for an `ack`; `nil` when the device wants none.
    public var seq: UInt64?
    /// What the message says.
    public var body: DeviceMessageBody

    /// Creates a message.
    public init(seq: UInt64?, body: DeviceMessageBody) {
        self.seq = seq
        self.body = body
    }

    /// The error object a `response` with status `error` gets when the device sent none.
    public static let defaultDeviceError: JSONObject = [
        "code": "device_error",
        "message": "device reported an error",
    ]

    /// Parses one text frame.
    ///
    /// Malformed: not JSON, not an object, unknown or missing `type`, a wrong field type, a
    /// missing required field, or a `seq` that is not an integer in `0...2^64-1` written as plain
    /// digits. The error carries the `seq` when the object had a valid one. Unknown extra
    /// fields are ignored; `null` counts as absent for optional fields.
    ///
    /// Most messages are telemetry that ``TelemetryScanner`` reads without building their `data`; the others are
    /// parsed into a tree first (``parseTree(_:)``), with the same outcome.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<DeviceMessage, BadMessageError> {
        if let telemetry = TelemetryScanner.scan(bytes) { return .success(telemetry) }
        return parseTree(bytes)
    }

    /// Parses one text frame into a tree of JSON values first: every message, as ``parse(_:)-(UnsafeRawBufferPointer)``
    /// would without its fast path (the reference that tests and the fuzzer hold the fast path to).
    public static func parseTree(_ bytes: UnsafeRawBufferPointer) -> Result<DeviceMessage, BadMessageError> {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            return .failure(BadMessageError(message: "invalid JSON: \(error)"))
        }
        guard case .object(let object) = value else {
            return .failure(BadMessageError(message: "a message must be a JSON object"))
        }
        var seq: UInt64?
        if object["seq"] != nil {
            do {
                seq = try object.requiredUInt64("seq")
            } catch {
                return .failure(BadMessageError(message: error.message))
            }
        }
        do {
            return .success(DeviceMessage(seq: seq, body: try parseBody(object)))
        } catch {
            return .failure(BadMessageError(seq: seq, message: error.message))
        }
    }

    /// Parses one text frame; see ``parse(_:)-(UnsafeRawBufferPointer)``.
    public static func parse(_ bytes: [UInt8]) -> Result<DeviceMessage, BadMessageError> {
        bytes.withUnsafeBytes { parse($0) }
    }

    private static func parseBody(_ object: JSONObject) throws(FieldError) -> DeviceMessageBody {
        guard let typeValue = object["type"] else { throw FieldError(message: "'type' is required") }
        guard case .string(let type) = typeValue else { throw FieldError(message: "'type' must be a string") }
        switch type {
        case "hello":
            return .hello(
                DeviceHello(
                    kind: try object.optionalString("kind"),
                    model: try object.optionalString("model"),
                    firmware: try object.optionalString("firmware"),
                    capabilities: try object.optionalObject("capabilities")
                )
            )
        case "telemetry":
            return .telemetry(data: TelemetryData(try object.requiredObject("data")), ts: try parseTimestamp(object), qos: try parseQoS(object))
        case "state":
            return .state(data: try object.requiredObject("data"))
        case "event":
            let name = try object.requiredString("name")
            guard Identifiers.isValidEventName(name) else {
                throw FieldError(message: "'name' must match [A-Za-z0-9_-]{1,64}")
            }
            let data: JSONValue
            switch object["data"] {
            case nil: data = .object(JSONObject())
            case .null?: data = .null
            case .object(let value)?: data = .object(value)
            default: throw FieldError(message: "'data' must be an object")
            }
            return .event(name: name, data: data, ts: try parseTimestamp(object))
        case "response":
            return try parseResponse(object)
        default:
            throw FieldError(message: "unknown type '\(type)'")
        }
    }

    private static func parseResponse(_ object: JSONObject) throws(FieldError) -> DeviceMessageBody {
        guard let rawID = object["id"] else { throw FieldError(message: "'id' is required") }
        guard let id = CommandID(json: rawID) else {
            throw FieldError(message: "'id' must be a non-negative integer or a string matching [A-Za-z0-9._:-]{1,128}")
        }
        let status: CommandStatus
        switch try object.optionalString("status") {
        case nil, "ok"?: status = .ok
        case "error"?: status = .error
        default: throw FieldError(message: "'status' must be \"ok\" or \"error\"")
        }
        var error = try object.optionalObject("error")
        if status == .error, error == nil {
            error = defaultDeviceError
        }
        return .response(id: id, status: status, data: object["data"] ?? .null, error: error)
    }

    private static func parseTimestamp(_ object: JSONObject) throws(FieldError) -> JSONNumber? {
        switch object["ts"] {
        case nil, .null?: return nil
        case .number(let number)? where number.isInteger: return number
        default: throw FieldError(message: "'ts' must be an integer (Unix milliseconds)")
        }
    }

    private static func parseQoS(_ object: JSONObject) throws(FieldError) -> Int? {
        switch object["qos"] {
        case nil, .null?: return nil
        case .number(let number)? where number.text == "0": return 0
        case .number(let number)? where number.text == "1": return 1
        default: throw FieldError(message: "'qos' must be 0 or 1")
        }
    }
}
