/// A message on `<base>/<dev>/desired/set` (PROTOCOL.md 7): `{"id":…,"data":{…},"version":n}`.
public struct DesiredPatchRequest: Sendable, Equatable {
    /// The caller's id; nil means the gateway makes one. `"id": null` counts as absent.
    public var id: CommandID?
    /// The JSON Merge Patch (RFC 7386) for the desired document's data.
    public var data: JSONObject
    /// Apply only when the document is at exactly this version. `"version": null` counts as absent.
    public var version: Int64?

    /// A patch request.
    public init(id: CommandID? = nil, data: JSONObject, version: Int64? = nil) {
        self.id = id
        self.data = data
        self.version = version
    }

    /// Parses a payload. Failures carry the raw `id` (to echo it) and say why the request is `bad_request`.
    public static func parse(_ payload: [UInt8]) -> Result<DesiredPatchRequest, CommandRequestError> {
        guard let value = try? JSONValue(parsing: payload), let object = value.objectValue else {
            return .failure(CommandRequestError(rawID: nil, message: "the payload must be a JSON object"))
        }
        let rawID = object["id"]
        func fail(_ message: String) -> Result<DesiredPatchRequest, CommandRequestError> {
            .failure(CommandRequestError(rawID: rawID, message: message))
        }
        var id: CommandID?
        if let rawID, !rawID.isNull {
            guard let valid = CommandID(json: rawID) else {
                return fail("id must be an integer or a string of 1-128 characters from A-Z a-z 0-9 . _ : -")
            }
            id = valid
        }
        guard let data = object["data"]?.objectValue else { return fail("data must be an object") }
        var version: Int64?
        if let rawVersion = object["version"], !rawVersion.isNull {
            guard let number = rawVersion.numberValue, number.isUnsignedDigits else {
                return fail("version must be an integer >= 0")
            }
            // Beyond Int64 no document can be at that version: a conflict, not a malformed request.
            version = number.int64Value ?? Int64.max
        }
        return .success(DesiredPatchRequest(id: id, data: data, version: version))
    }

    /// The JSON a client publishes.
    public func encoded() -> [UInt8] {
        var object = JSONObject()
        if let id { object["id"] = id.json }
        object["data"] = .object(data)
        if let version { object["version"] = .number(version) }
        return JSONValue.object(object).serialized()
    }
}
