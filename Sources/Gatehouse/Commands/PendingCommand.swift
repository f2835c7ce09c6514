import Logging
import Mosquitto
import GatehouseProtocol

/// A command queued for an offline device, stored as the retained `<base>/<dev>/pending/<id>`.
struct PendingCommand: Sendable {
    var id: CommandID
    var device: String
    var name: String
    var params: JSONObject
    var timeoutMs: Int64
    var queuedAt: Int64
    var expiresAt: Int64
    /// The gateway that queued it answers `expired` for it.
    var gateway: String
    var replyTo: ReplyTo?

    /// How long after its TTL a queued command stays on the broker, so that a gateway starting within a
    /// day after the TTL ended still finds it and answers `expired`.
    static let expiryGraceMs: Int64 = 86_400_000

    /// The MQTT 5 Message Expiry Interval of `pending/<id>`: the TTL in whole seconds, rounded up, plus the grace.
    static func messageExpiry(ttlMs: Int64) -> UInt32 {
        let seconds = (min(max(0, ttlMs), CommandRequestParser.maxTTLMs) + 999) / 1000
        return UInt32(clamping: seconds + expiryGraceMs / 1000)
    }

    func encoded() -> [UInt8] {
        var object = JSONObject([
            ("id", id.json), ("command", .string(name)), ("params", .object(params)),
            ("timeout_ms", .number(JSONNumber(timeoutMs))), ("queued_at", .number(JSONNumber(queuedAt))),
            ("expires_at", .number(JSONNumber(expiresAt))), ("gateway", .string(gateway)),
        ])
        if let replyTo {
            object["response_topic"] = .string(replyTo.topic)
            if let data = replyTo.correlationData { object["correlation_data"] = .string(Hex.encode(data)) }
        }
        return JSONValue.object(object).serialized()
    }

    init(id: CommandID, device: String, name: String, params: JSONObject, timeoutMs: Int64, queuedAt: Int64, expiresAt: Int64, gateway: String, replyTo: ReplyTo?) {
        self.id = id
        self.device = device
        self.name = name
        self.params = params
        self.timeoutMs = timeoutMs
        self.queuedAt = queuedAt
        self.expiresAt = expiresAt
        self.gateway = gateway
        self.replyTo = replyTo
    }

    /// Whether `name` could be a request topic's last level (responses go to `response/<name>`), and is not `desired`,
    /// whose response topic is §7's. A planted one that could not would have responses nobody can publish.
    static func couldComeFromARequestTopic(_ name: String) -> Bool {
        !name.isEmpty && name != Topics.desiredCommand
            && !name.unicodeScalars.contains { "+#/".unicodeScalars.contains($0) || $0.properties.generalCategory == .control }
    }

    init?(device: String, payload: [UInt8]) {
        guard let json = try? JSONValue(parsing: payload), let object = json.objectValue,
              let idValue = object["id"], let id = CommandID(json: idValue),
              let name = object["command"]?.stringValue, Self.couldComeFromARequestTopic(name),
              let timeout = object["timeout_ms"]?.numberValue?.int64Value,
              (1...CommandRequestParser.maxTimeoutMs).contains(timeout),
              let queuedAt = object["queued_at"]?.numberValue?.int64Value,
              let expiresAt = object["expires_at"]?.numberValue?.int64Value,
              let gateway = object["gateway"]?.stringValue
        else { return nil }
        var replyTo: ReplyTo?
        if let topic = object["response_topic"]?.stringValue {
            let data = object["correlation_data"]?.stringValue.flatMap(Hex.decode)
            // MQTT carries at most 65,535 bytes of it: a longer one did not come with a request.
            guard (data?.count ?? 0) <= Int(UInt16.max) else { return nil }
            replyTo = ReplyTo(topic: topic, correlationData: data)
        }
        self.init(id: id, device: device, name: name, params: object["params"]?.objectValue ?? JSONObject(),
                  timeoutMs: timeout, queuedAt: queuedAt, expiresAt: expiresAt, gateway: gateway, replyTo: replyTo)
    }
}
