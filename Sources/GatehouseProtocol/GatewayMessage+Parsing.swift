extension GatewayMessage {
    /// Parses a text frame from the gateway (device side); `nil` when it is not one of the
    /// shapes of PROTOCOL.md 3.1. Unknown extra fields are ignored; a missing error `message`
    /// reads as empty and missing command `params` as `{}`.
    public static func parse(_ bytes: [UInt8]) -> GatewayMessage? {
        guard case .object(let object)? = try? JSONValue(parsing: bytes) else { return nil }
        return try? parse(object)
    }

    private static func parse(_ object: JSONObject) throws(FieldError) -> GatewayMessage? {
        switch try object.requiredString("type") {
        case "welcome":
            return .welcome(
                device: try object.requiredString("device"),
                gateway: try object.requiredString("gateway"),
                session: try object.requiredInt64("session"),
                heartbeatS: try object.requiredInt("heartbeat_s"),
                maxMessageBytes: try object.requiredInt("max_message_bytes")
            )
        case "ack":
            return .ack(seq: try object.requiredUInt64("seq"))
        case "nack":
            let error = try object.requiredObject("error")
            return .nack(
                seq: try object.requiredUInt64("seq"),
                code: try error.requiredString("code"),
                message: try error.optionalString("message") ?? ""
            )
        case "command":
            guard let rawID = object["id"], let id = CommandID(json: rawID) else { return nil }
            return .command(
                id: id,
                name: try object.requiredString("name"),
                params: try object.optionalObject("params") ?? JSONObject(),
                deadline: try object.requiredInt64("deadline")
            )
        case "desired":
            return .desired(version: try object.requiredInt64("version"), data: try object.requiredObject("data"))
        case "error":
            let error = try object.requiredObject("error")
            return .error(code: try error.requiredString("code"), message: try error.optionalString("message") ?? "")
        default:
            return nil
        }
    }
}
