/// What a device message says, by `type` (PROTOCOL.md 3.2).
public enum DeviceMessageBody: Sendable, Equatable {
    /// `hello`: published retained to `<base>/<dev>/meta`.
    case hello(DeviceHello)
    /// `telemetry`: `data` object, optional integer `ts`, optional `qos` 0 or 1.
    case telemetry(data: TelemetryData, ts: JSONNumber?, qos: Int?)
    /// `state`: `data` object, merged into the retained state.
    case state(data: JSONObject)
    /// `event`: a valid event `name`; `data` is an object (`{}` when absent) or `null`; `ts` (integer) passes through like telemetry's.
    case event(name: String, data: JSONValue, ts: JSONNumber? = nil)
    /// `response` to a command: `status` is ``CommandStatus/ok`` or ``CommandStatus/error``,
    /// `data` is `null` when absent, `error` is always set when the status is `error`.
    case response(id: CommandID, status: CommandStatus, data: JSONValue, error: JSONObject?)
}

extension DeviceMessageBody {
    /// The message's `type` as it is spelled on the wire.
    public var type: String {
        switch self {
        case .hello: "hello"
        case .telemetry: "telemetry"
        case .state: "state"
        case .event: "event"
        case .response: "response"
        }
    }
}
