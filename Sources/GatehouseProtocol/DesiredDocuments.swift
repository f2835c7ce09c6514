/// `<base>/<dev>/desired` (retained, PROTOCOL.md 7): the whole desired document. Its version is raised by
/// exactly one per accepted patch; 0 means no document. Same shape and rules as the reported `state`.
public typealias DesiredDocument = VersionedDocument

/// `<base>/<dev>/delta` (retained, PROTOCOL.md 7): what the reported state does not match yet.
public struct DeltaDocument: Sendable, Equatable {
    /// When it was written (Unix ms).
    public var ts: Int64
    /// The desired document's version.
    public var version: Int64
    /// The reported state's version (0 when there is none).
    public var stateVersion: Int64
    /// The delta; `{}` when the device is in sync.
    public var data: JSONObject

    /// A delta document.
    public init(ts: Int64, version: Int64, stateVersion: Int64, data: JSONObject) {
        self.ts = ts
        self.version = version
        self.stateVersion = stateVersion
        self.data = data
    }

    /// The JSON form.
    public func json() -> JSONValue {
        ["ts": .number(ts), "version": .number(version), "state_version": .number(stateVersion), "data": .object(data)]
    }

    /// Reads the JSON form.
    public init?(json: JSONValue) {
        guard let data = json["data"]?.objectValue, let version = json["version"]?.numberValue?.int64Value, version >= 0 else {
            return nil
        }
        self.init(ts: json["ts"]?.numberValue?.int64Value ?? 0, version: version,
                  stateVersion: json["state_version"]?.numberValue?.int64Value ?? 0, data: data)
    }
}

extension DeltaDocument: JSONPayload {}
