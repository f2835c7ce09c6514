/// A command request as published on `<base>/<dev>/request/<command>` (or `<base>/<dev>/set`).
public struct CommandRequest: Sendable, Equatable {
    /// The caller's id; nil means the gateway makes one.
    public var id: CommandID?
    /// Command parameters.
    public var params: JSONObject
    /// How long to wait for the device's answer once delivered.
    public var timeoutMs: Int64?
    /// How long to keep it queued while the device is offline (0 = answer `offline` at once).
    public var ttlMs: Int64?

    /// A request.
    public init(id: CommandID? = nil, params: JSONObject = JSONObject(), timeoutMs: Int64? = nil, ttlMs: Int64? = nil) {
        self.id = id
        self.params = params
        self.timeoutMs = timeoutMs
        self.ttlMs = ttlMs
    }
}

/// Why a request is `rejected` with `bad_request`.
public struct CommandRequestError: Error, Sendable, Equatable {
    /// The `id` as sent, echoed in the response when there was one.
    public var rawID: JSONValue?
    /// What is wrong.
    public var message: String
}

/// Parses and encodes command requests.
public enum CommandRequestParser {
    /// The longest `timeout_ms` (a day).
    public static let maxTimeoutMs: Int64 = 86_400_000
    /// The longest `ttl_ms` (30 days).
    public static let maxTTLMs: Int64 = 2_592_000_000

    /// `request/<command>`: an object (an empty payload means `{}`) with optional `id`, `params`,
    /// `timeout_ms` (1 ms to a day) and `ttl_ms` (0 to 30 days).
    public static func parseRequest(_ payload: [UInt8]) -> Result<CommandRequest, CommandRequestError> {
        let object: JSONObject
        switch parseObject(payload) {
        case .success(let value): object = value
        case .failure(let error): return .failure(error)
        }
        let rawID = object["id"]
        func fail(_ message: String) -> Result<CommandRequest, CommandRequestError> {
            .failure(CommandRequestError(rawID: rawID, message: message))
        }
        var request = CommandRequest()
        if let rawID, !rawID.isNull {
            guard let id = CommandID(json: rawID) else {
                return fail("id must be an integer or a string of 1-128 characters from A-Z a-z 0-9 . _ : -")
            }
            request.id = id
        }
        if let params = object["params"], !params.isNull {
            guard let params = params.objectValue else { return fail("params must be an object") }
            request.params = params
        }
        if let timeout = object["timeout_ms"], !timeout.isNull {
            guard let value = timeout.numberValue?.int64Value, (1...maxTimeoutMs).contains(value) else {
                return fail("timeout_ms must be an integer from 1 to \(maxTimeoutMs)")
            }
            request.timeoutMs = value
        }
        if let ttl = object["ttl_ms"], !ttl.isNull {
            guard let value = ttl.numberValue?.int64Value, (0...maxTTLMs).contains(value) else {
                return fail("ttl_ms must be an integer from 0 to \(maxTTLMs)")
            }
            request.ttlMs = value
        }
        return .success(request)
    }

    /// `<dev>/set`: the object is the params of command `set`.
    public static func parseSet(_ payload: [UInt8]) -> Result<CommandRequest, CommandRequestError> {
        parseObject(payload).map { CommandRequest(params: $0) }
    }

    /// The JSON a client publishes.
    public static func encodeRequest(_ request: CommandRequest) -> [UInt8] {
        var object = JSONObject()
        if let id = request.id { object["id"] = id.json }
        object["params"] = .object(request.params)
        if let timeout = request.timeoutMs { object["timeout_ms"] = .number(timeout) }
        if let ttl = request.ttlMs { object["ttl_ms"] = .number(ttl) }
        return JSONValue.object(object).serialized()
    }

    private static func parseObject(_ payload: [UInt8]) -> Result<JSONObject, CommandRequestError> {
        if payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .success(JSONObject()) }
        guard let value = try? JSONValue(parsing: payload) else {
            return .failure(CommandRequestError(rawID: nil, message: "the request is not valid JSON"))
        }
        guard let object = value.objectValue else {
            return .failure(CommandRequestError(rawID: nil, message: "the request must be a JSON object"))
        }
        return .success(object)
    }
}
