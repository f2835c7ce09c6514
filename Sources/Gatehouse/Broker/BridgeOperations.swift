import Foundation
import GatehouseProtocol
import Logging
import Mosquitto

/// Operations on this gateway through MQTT (`<base>/bridge/<gw>/request/<op>`: `devices`, `kick`,
/// `reload`) and its `bridge/<gw>/health` report.
///
/// Owns nothing. Calls `BrokerLink` (answers), `DeviceHub` (kinds), `Reloader`; reads `DeviceDirectory`.
final class BridgeOperations: Sendable {
    private let gatewayID: String
    private let topics: Topics
    private let link: BrokerLink
    private let directory: DeviceDirectory
    private let devices: DeviceHub
    private let reloader: Reloader
    private let metrics: GatewayMetrics
    private let startedAt: Date

    init(gatewayID: String, topics: Topics, link: BrokerLink, directory: DeviceDirectory, devices: DeviceHub, reloader: Reloader,
         metrics: GatewayMetrics, startedAt: Date) {
        self.gatewayID = gatewayID
        self.topics = topics
        self.link = link
        self.directory = directory
        self.devices = devices
        self.reloader = reloader
        self.metrics = metrics
        self.startedAt = startedAt
    }

    /// `<base>/bridge/<gw>/request/<op>`: `devices`, `kick`, `reload`.
    func handle(op: String, message: MQTTMessage) {
        let request = Self.object(of: message)
        func reply(_ status: String, data: JSONValue? = nil, error: (String, String)? = nil) {
            self.reply(op: op, to: message, id: request?["id"] ?? .null, status: status, data: data, error: error)
        }
        guard let request else {
            reply("error", error: ("bad_request", "the request must be a JSON object"))
            return
        }
        switch op {
        case "devices":
            let list = directory.sessions.sorted { $0.device < $1.device }.map { session -> JSONValue in
                .object(JSONObject([
                    ("device", .string(session.device)),
                    ("kind", devices.kind(of: session).map(JSONValue.string) ?? .null),
                    ("session", .number(JSONNumber(session.number))),
                    ("connected_at", .number(JSONNumber(session.connectedAt))),
                    ("remote", .string(session.remote)),
                ]))
            }
            reply("ok", data: .array(list))
        case "kick":
            guard let device = request["device"]?.stringValue else {
                reply("error", error: ("bad_request", "kick needs {\"device\": \"<id>\"}"))
                return
            }
            guard let session = directory.session(device) else {
                reply("error", error: ("not_found", "device \(device) is not connected to \(gatewayID)"))
                return
            }
            session.close(.policyViolation, reason: .kicked, text: "kicked by operator")
            reply("ok", data: .object(JSONObject([("device", .string(device))])))
        case "reload":
            reply("ok", data: reloader.reload(trigger: "reload request").json)
        default:
            reply("error", error: ("unknown_op", "unknown bridge operation \(op); try devices, kick or reload"))
        }
    }

    /// A request that finds too many waiting already (`SlowRequests`) is answered `error` `busy`, and not run. On the
    /// MQTT network thread: its id is read only from a payload of at most 4 KiB (a request is a few bytes), else null.
    func refuseBusy(op: String, message: MQTTMessage) {
        let id = message.payload.count <= 4096 ? Self.object(of: message)?["id"] : nil
        reply(op: op, to: message, id: id ?? .null, status: "error",
              error: ("busy", "\(SlowRequests.maxWaiting) requests wait already; retry later"))
    }

    private static func object(of message: MQTTMessage) -> JSONObject? {
        (try? JSONValue(parsing: message.payload.isEmpty ? Array("{}".utf8) : message.payload))?.objectValue
    }

    /// Publishes a response to the bridge's response topic, and to the request's Response Topic when it is allowed.
    private func reply(op: String, to message: MQTTMessage, id: JSONValue, status: String, data: JSONValue? = nil, error: (String, String)? = nil) {
        let response = BridgeResponse(
            id: id, status: status, data: data,
            error: error.map { JSONObject([("code", .string($0.0)), ("message", .string($0.1))]) })
        link.publish(OutboundMessage(topic: topics.bridgeResponse(gatewayID, op), payload: response.encoded()), .bestEffort(.atLeastOnce))
        if let topic = message.properties.responseTopic, topics.isAllowedResponseTopic(topic) {
            let properties = MQTTProperties(correlationData: message.properties.correlationData)
            link.publish(OutboundMessage(topic: topic, payload: response.encoded(), properties: properties), .bestEffort(.atLeastOnce))
        }
    }

    /// The `bridge/<gw>/health` payload.
    func healthReport() -> JSONValue {
        let rates = metrics.takeRates()
        let spool = link.outbox.spool.stats()
        return .object(JSONObject([
            ("ts", .number(JSONNumber(nowMs()))),
            ("gateway", .string(gatewayID)),
            ("devices_connected", .number(JSONNumber(directory.count))),
            ("messages_in_per_s", .number(JSONNumber(rates.inPerSecond) ?? JSONNumber(0))),
            ("messages_out_per_s", .number(JSONNumber(rates.outPerSecond) ?? JSONNumber(0))),
            ("spool_depth", .number(JSONNumber(spool.depth))),
            ("spool_bytes", .number(JSONNumber(spool.bytes))),
            ("broker_connected", .bool(link.isConnected)),
            ("uptime_s", .number(JSONNumber(Int(Date().timeIntervalSince(startedAt))))),
        ]))
    }
}
