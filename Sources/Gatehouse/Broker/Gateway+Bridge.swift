import Logging
import Foundation
import GatehouseProtocol
import Mosquitto

extension Gateway {
    /// `<base>/bridge/<gw>/request/<op>`: `devices`, `kick`, `reload`.
    func handleBridgeRequest(op: String, message: MQTTMessage) {
        let request = (try? JSONValue(parsing: message.payload.isEmpty ? Array("{}".utf8) : message.payload))?.objectValue
        let requestID = request?["id"] ?? .null
        func reply(_ status: String, data: JSONValue? = nil, error: (String, String)? = nil) {
            let response = BridgeResponse(
                id: requestID, status: status, data: data,
                error: error.map { JSONObject([("code", .string($0.0)), ("message", .string($0.1))]) })
            publish(topics.bridgeResponse(id, op), response.encoded())
            if let topic = message.properties.responseTopic {
                publish(topic, response.encoded(), properties: MQTTProperties(correlationData: message.properties.correlationData))
            }
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
                    ("kind", kind(of: session).map(JSONValue.string) ?? .null),
                    ("session", .number(JSONNumber(session.session))),
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
                reply("error", error: ("not_found", "device \(device) is not connected to \(id)"))
                return
            }
            session.close(.policyViolation, reason: .kicked, text: "kicked by operator")
            reply("ok", data: .object(JSONObject([("device", .string(device))])))
        case "reload":
            reply("ok", data: reload(trigger: "reload request").json)
        default:
            reply("error", error: ("unknown_op", "unknown bridge operation \(op); try devices, kick or reload"))
        }
    }

    /// Closes connected devices whose id or token is now revoked (1008, reason `revoked`).
    func enforceRevocations() {
        for session in directory.sessions where credentials.isRevoked(device: session.device, tokenID: session.tokenID) {
            session.close(.policyViolation, reason: .revoked, text: "credential revoked")
        }
    }

    /// The `bridge/<gw>/health` payload.
    func healthReport(intervalSeconds: Double) -> JSONValue {
        let rates = metrics.takeRates(intervalSeconds: intervalSeconds)
        let spool = outbox.spool.stats(now: nowMs())
        return .object(JSONObject([
            ("ts", .number(JSONNumber(nowMs()))),
            ("gateway", .string(id)),
            ("devices_connected", .number(JSONNumber(directory.count))),
            ("messages_in_per_s", .number(JSONNumber(rates.inPerSecond) ?? JSONNumber(0))),
            ("messages_out_per_s", .number(JSONNumber(rates.outPerSecond) ?? JSONNumber(0))),
            ("spool_depth", .number(JSONNumber(spool.depth))),
            ("spool_bytes", .number(JSONNumber(spool.bytes))),
            ("broker_connected", .bool(broker.isConnected)),
            ("uptime_s", .number(JSONNumber(uptimeSeconds))),
        ]))
    }

    /// Last step of a graceful shutdown, after the server stopped accepting: every device is closed with
    /// 1001 and marked offline; the PUBACKs in flight get up to `gateway.shutdown_grace_s`, what is still
    /// unconfirmed goes to the spool, then the gateway's own `offline` is published.
    func shutDown() async {
        setListening(false)
        setBrokerReady(false)
        let grace = Duration.seconds(config.gateway.shutdownGraceSeconds)
        for session in directory.sessions {
            session.close(.goingAway, reason: .gatewayShutdown, text: "gateway shutting down")
            if directory.detach(session) {
                publishOffline(session.device, session: session.session, reason: .gatewayShutdown)
            }
        }
        let spooled = await outbox.stop(grace: grace)
        if spooled > 0 { logger.warning("\(spooled) messages unconfirmed by the broker within \(grace) were spooled for the next start") }
        let offline = BridgeState(state: "offline", ts: nowMs(), version: version)
        // QoS 1 messages are acknowledged in order: once this one is, so is every publish before it.
        if await !publishAndWait(topics.bridgeState(id), offline.encoded(), retain: true, timeout: .seconds(2)) {
            logger.warning("the broker did not confirm the offline announcements")
        }
    }
}
