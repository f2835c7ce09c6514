/// MQTT payloads that the gateway writes and the CLI (or another gateway) reads.
///
/// Each reads back only the shape the contract gives it (PROTOCOL §4's table, in docs/protocol.md): every field it
/// names, of its type. A retained payload of any other shape changes nothing, so a stray `{}` on a device's `meta`
/// cannot wipe its capabilities, nor `{"state":"online"}` on a bridge topic count a gateway as online.

/// `online` or `offline`: a device's availability or a gateway's bridge state.
public enum Presence: String, Sendable, Equatable {
    case online
    case offline
}

/// `<base>/<dev>/availability` (retained).
public struct Availability: Sendable, Equatable {
    /// Whether the device is connected.
    public var state: Presence
    /// The gateway that holds (or last held) the device.
    public var gateway: String
    /// The device's session number.
    public var session: Int64
    /// When it changed (Unix ms).
    public var ts: Int64
    /// Why it went offline (`OfflineReason`); only when offline.
    public var reason: String?

    /// An availability record.
    public init(state: Presence, gateway: String, session: Int64, ts: Int64, reason: String? = nil) {
        self.state = state
        self.gateway = gateway
        self.session = session
        self.ts = ts
        self.reason = reason
    }

    /// The JSON form.
    public func json() -> JSONValue {
        var object: JSONObject = ["state": .string(state.rawValue), "gateway": .string(gateway), "session": .number(session), "ts": .number(ts)]
        if state == .offline, let reason { object["reason"] = .string(reason) }
        return .object(object)
    }

    /// Reads the JSON form: `state`, `gateway`, `session` and `ts`, and a known `reason` only when offline.
    public init?(json: JSONValue) {
        guard let state = json["state"]?.stringValue.flatMap(Presence.init(rawValue:)), let gateway = json["gateway"]?.stringValue,
              let session = json["session"]?.numberValue?.int64Value, let ts = json["ts"]?.numberValue?.int64Value
        else { return nil }
        var reason: String?
        if let given = json["reason"] {
            guard state == .offline, let text = given.stringValue, OfflineReason(rawValue: text) != nil else { return nil }
            reason = text
        }
        self.init(state: state, gateway: gateway, session: session, ts: ts, reason: reason)
    }
}

/// `<base>/bridge/<gw>/state` (retained; `offline` is also the gateway's Will).
public struct BridgeState: Sendable, Equatable {
    /// Whether the gateway is running and connected.
    public var state: Presence
    /// When it changed (Unix ms).
    public var ts: Int64
    /// The gateway's version.
    public var version: String

    /// A bridge state.
    public init(state: Presence, ts: Int64, version: String) {
        self.state = state
        self.ts = ts
        self.version = version
    }

    /// The JSON form.
    public func json() -> JSONValue {
        ["state": .string(state.rawValue), "ts": .number(ts), "version": .string(version)]
    }

    /// Reads the JSON form: `state`, `ts` and `version`.
    public init?(json: JSONValue) {
        guard let state = json["state"]?.stringValue.flatMap(Presence.init(rawValue:)), let ts = json["ts"]?.numberValue?.int64Value,
              let version = json["version"]?.stringValue
        else { return nil }
        self.init(state: state, ts: ts, version: version)
    }
}

/// `<base>/<dev>/meta` (retained), every key present.
public struct DeviceMeta: Sendable, Equatable {
    /// When the `hello` arrived (Unix ms).
    public var ts: Int64
    /// From `hello`, else from the token.
    public var kind: String?
    /// Device model.
    public var model: String?
    /// Firmware version.
    public var firmware: String?
    /// What the device accepts.
    public var capabilities: JSONObject?

    /// Whether `other` says the same of the device (kind, model, firmware, capabilities), whenever it was said.
    public func saysTheSame(as other: DeviceMeta?) -> Bool {
        guard var other else { return false }
        other.ts = ts
        return other == self
    }

    /// A meta record.
    public init(ts: Int64, kind: String?, model: String?, firmware: String?, capabilities: JSONObject?) {
        self.ts = ts
        self.kind = kind
        self.model = model
        self.firmware = firmware
        self.capabilities = capabilities
    }

    /// The JSON form (`null` for unknown keys).
    public func json() -> JSONValue {
        [
            "ts": .number(ts), "kind": kind.map(JSONValue.string) ?? .null, "model": model.map(JSONValue.string) ?? .null,
            "firmware": firmware.map(JSONValue.string) ?? .null, "capabilities": capabilities.map(JSONValue.object) ?? .null,
        ]
    }

    /// Reads the JSON form: every key present, `ts` an integer, the others of their type or `null`.
    public init?(json: JSONValue) {
        guard let ts = json["ts"]?.numberValue?.int64Value,
              case .some(let kind) = Self.stringOrNull(json["kind"]), case .some(let model) = Self.stringOrNull(json["model"]),
              case .some(let firmware) = Self.stringOrNull(json["firmware"]), let capabilities = json["capabilities"]
        else { return nil }
        if capabilities != .null, capabilities.objectValue == nil { return nil }
        self.init(ts: ts, kind: kind, model: model, firmware: firmware, capabilities: capabilities.objectValue)
    }

    /// A present member that is a string (`.some(text)`) or `null` (`.some(nil)`); nil when absent or of another type.
    private static func stringOrNull(_ value: JSONValue?) -> String?? {
        guard let value else { return nil }
        if value == .null { return .some(nil) }
        return value.stringValue.map { .some($0) }
    }
}

/// `<base>/<dev>/state` (retained): the reported state after merge patches.
public typealias StateDocument = VersionedDocument

/// A retained document with a version: the reported `state` and the `desired` document (PROTOCOL.md 4, 7).
public struct VersionedDocument: Sendable, Equatable {
    /// When it last changed (Unix ms).
    public var ts: Int64
    /// Increases by one per update.
    public var version: Int64
    /// The document.
    public var data: JSONObject

    /// A document.
    public init(ts: Int64, version: Int64, data: JSONObject) {
        self.ts = ts
        self.version = version
        self.data = data
    }

    /// The JSON form.
    public func json() -> JSONValue {
        ["ts": .number(ts), "version": .number(version), "data": .object(data)]
    }

    /// Reads the JSON form: `ts` an integer, `data` an object and `version` an integer ≥ 0, or it is not such a document.
    public init?(json: JSONValue) {
        guard let ts = json["ts"]?.numberValue?.int64Value, let data = json["data"]?.objectValue,
              let version = json["version"]?.numberValue?.int64Value, version >= 0
        else { return nil }
        self.init(ts: ts, version: version, data: data)
    }
}

/// `<base>/<dev>/response/<command>`: one final response per request (plus an interim `queued`).
public struct CommandResponse: Sendable, Equatable {
    /// The request's id, with its JSON type.
    public var id: JSONValue
    /// The status.
    public var status: CommandStatus
    /// The device's data (`null` when it gave none); absent for gateway-made responses.
    public var data: JSONValue?
    /// `{"code","message"}`, only when the status is not `ok`/`queued`.
    public var error: JSONObject?
    /// When it was published (Unix ms).
    public var ts: Int64

    /// A response.
    public init(id: JSONValue, status: CommandStatus, data: JSONValue?, error: JSONObject?, ts: Int64) {
        self.id = id
        self.status = status
        self.data = data
        self.error = error
        self.ts = ts
    }

    /// The JSON form.
    public func json() -> JSONValue {
        var object: JSONObject = ["id": id, "status": .string(status.rawValue)]
        object["data"] = data ?? .null
        if status != .ok && status != .queued { object["error"] = .object(error ?? JSONObject()) }
        object["ts"] = .number(ts)
        return .object(object)
    }

    /// Reads the JSON form.
    public init?(json: JSONValue) {
        guard let id = json["id"], let status = json["status"]?.stringValue.flatMap(CommandStatus.init(rawValue:)) else { return nil }
        self.init(id: id, status: status, data: json["data"], error: json["error"]?.objectValue, ts: json["ts"]?.numberValue?.int64Value ?? 0)
    }
}

/// `<base>/bridge/<gw>/response/<op>`.
public struct BridgeResponse: Sendable, Equatable {
    /// The request's id.
    public var id: JSONValue
    /// `ok` or `error`.
    public var status: String
    /// The result.
    public var data: JSONValue?
    /// `{"code","message"}` on error.
    public var error: JSONObject?

    /// A bridge response.
    public init(id: JSONValue, status: String, data: JSONValue?, error: JSONObject?) {
        self.id = id
        self.status = status
        self.data = data
        self.error = error
    }

    /// The JSON form.
    public func json() -> JSONValue {
        var object: JSONObject = ["id": id, "status": .string(status)]
        object["data"] = data ?? .null
        if let error { object["error"] = .object(error) }
        return .object(object)
    }

    /// Reads the JSON form.
    public init?(json: JSONValue) {
        guard let id = json["id"], let status = json["status"]?.stringValue else { return nil }
        self.init(id: id, status: status, data: json["data"], error: json["error"]?.objectValue)
    }
}

/// Encoding and decoding shared by every payload type.
public protocol JSONPayload {
    /// The JSON form.
    func json() -> JSONValue
    /// Reads the JSON form.
    init?(json: JSONValue)
}

extension JSONPayload {
    /// Compact UTF-8 JSON.
    public func encoded() -> [UInt8] { json().serialized() }

    /// Parses a payload; nil when it is not valid JSON of this shape (an empty retained message clears).
    public static func decode(_ bytes: [UInt8]) -> Self? {
        guard !bytes.isEmpty, let value = try? JSONValue(parsing: bytes) else { return nil }
        return Self(json: value)
    }
}

extension Availability: JSONPayload {}
extension BridgeState: JSONPayload {}
extension DeviceMeta: JSONPayload {}
extension VersionedDocument: JSONPayload {}
extension CommandResponse: JSONPayload {}
extension BridgeResponse: JSONPayload {}

/// `<base>/<dev>/telemetry`: `{"ts":…,"seq":…,"data":{…}}` (`seq` only when the device sent one), written
/// straight to bytes: it is built once per device message, the gateway's hottest path.
public enum TelemetryPayload {
    public static func encode(ts: JSONNumber, seq: UInt64?, data: TelemetryData) -> [UInt8] {
        var payload: [UInt8] = []
        encode(ts: ts, seq: seq, data: data, into: &payload)
        return payload
    }

    /// With the gateway's time of receipt as `ts` (ms since 1970), written as digits: no `JSONNumber` of it.
    public static func encode(receivedMs: Int64, seq: UInt64?, data: TelemetryData) -> [UInt8] {
        var payload: [UInt8] = []
        encode(receivedMs: receivedMs, seq: seq, data: data, into: &payload)
        return payload
    }

    /// Writes the payload over `payload`'s contents, in its storage when nothing else holds it (no allocation).
    public static func encode(ts: JSONNumber, seq: UInt64?, data: TelemetryData, into payload: inout [UInt8]) {
        var text = ts.text
        text.withUTF8 { digits in
            encode(tsLength: digits.count, seq: seq, data: data, into: &payload) { out, at in
                copy(UnsafeRawBufferPointer(digits), into: out, at: at)
            }
        }
    }

    /// Writes the payload with the time of receipt over `payload`'s contents, as the other `encode(into:)`.
    public static func encode(receivedMs: Int64, seq: UInt64?, data: TelemetryData, into payload: inout [UInt8]) {
        guard receivedMs >= 0 else { return encode(ts: JSONNumber(receivedMs), seq: seq, data: data, into: &payload) }
        encode(tsLength: 20, seq: seq, data: data, into: &payload) { out, at in JSONWriter.writeDecimal(UInt64(receivedMs), into: out, at: at) }
    }

    /// Written into room for the payload's greatest length (`tsLength` for `ts`, 20 digits for `seq`), cut to what
    /// was written: no growth check per piece (appending the pieces to an array was 5 % of the QoS 0 telemetry
    /// path's samples).
    private static func encode(
        tsLength: Int, seq: UInt64?, data: TelemetryData, into payload: inout [UInt8],
        ts: (UnsafeMutableBufferPointer<UInt8>, Int) -> Int
    ) {
        data.withSerializedBytes { data in
            let room = 21 + tsLength + 20 + data.count + 1
            // Kept only while not much larger: storage still held elsewhere is copied at its whole capacity.
            if payload.capacity > 2 * room { payload = [] } else { payload.removeAll(keepingCapacity: true) }
            if room <= zeros.count {
                zeros.withUnsafeBufferPointer { payload.append(contentsOf: UnsafeBufferPointer(rebasing: $0[..<room])) }  // a memcpy
            } else {
                payload.append(contentsOf: repeatElement(0, count: room))  // byte by byte: 1.2 % of the samples for 150 bytes
            }
            let count = payload.withUnsafeMutableBufferPointer { out in
                var at = write(#"{"ts":"#, into: out, at: 0)
                at = ts(out, at)
                if let seq {
                    at = write(#","seq":"#, into: out, at: at)
                    at = JSONWriter.writeDecimal(seq, into: out, at: at)
                }
                at = write(#","data":"#, into: out, at: at)
                at = copy(data, into: out, at: at)
                out[at] = UInt8(ascii: "}")
                return at + 1
            }
            payload.removeLast(room - count)
        }
    }

    /// Room for a usual payload, made by copying: `encode` writes over it.
    private static let zeros = [UInt8](repeating: 0, count: 1024)

    private static func write(_ text: StaticString, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        text.withUTF8Buffer { copy(UnsafeRawBufferPointer($0), into: out, at: start) }
    }

    /// Copies `bytes` into `out` from `start` (where there is room for them); returns the index after the last.
    private static func copy(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: out[start...])).copyMemory(from: bytes)
        return start + bytes.count
    }
}
