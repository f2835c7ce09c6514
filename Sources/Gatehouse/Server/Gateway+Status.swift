import Foundation
import GatehouseProtocol
import Mosquitto
import Synchronization

extension Gateway {
    /// `GET /api/status`, what the status page shows: the gateway's health, its spool and the devices it holds.
    func statusReport() -> JSONValue {
        let now = nowMs()
        let rates = metrics.recentRates(nowMs: now)
        let spool = link.outbox.spool.stats()
        let embedded: JSONValue = embeddedBroker.map { broker in
            let status = broker.status
            return .object(JSONObject([
                ("running", .bool(status.running)),
                ("pid", status.pid.map { .number(JSONNumber(Int($0))) } ?? .null),
                ("restarts", .number(JSONNumber(status.restarts))),
                ("port", .number(JSONNumber(broker.settings.port))),
            ]))
        } ?? .null
        let devices = directory.sessions.sorted { $0.device < $1.device }.map { session -> JSONValue in
            let activity = session.readActivity(nowMs: now)
            let desiredState = desired.status(of: session.device)
            return .object(JSONObject([
                ("device", .string(session.device)),
                ("kind", self.devices.kind(of: session).map(JSONValue.string) ?? .null),
                ("session", .number(JSONNumber(session.number))),
                ("connected_at", .number(JSONNumber(session.connectedAt))),
                ("last_seen", .number(JSONNumber(activity.lastSeen))),
                ("remote", .string(session.remote)),
                ("messages_in", .number(JSONNumber(activity.messages))),
                ("messages_per_s", .number(Self.rounded(activity.perSecond))),
                ("desired_version", desiredState.version.map { .number(JSONNumber($0)) } ?? .null),
                ("delta", desiredState.delta.map(JSONValue.object) ?? .null),
                ("delta_pending_since", desiredState.pendingSince.map { .number(JSONNumber($0)) } ?? .null),
                ("reported", directory.stateDocument(session.device).map { .object($0.data) } ?? .null),
                ("telemetry", session.latestTelemetry.map { .object(JSONObject([("ts", .number($0.ts)), ("data", .object($0.data.object))])) } ?? .null),
                ("live", live.summary(of: session.device) ?? .null),
            ]))
        }
        return .object(JSONObject([
            ("ts", .number(JSONNumber(now))),
            ("gateway", .object(JSONObject([
                ("id", .string(id)),
                ("version", .string(Self.version)),
                ("uptime_s", .number(JSONNumber(uptimeSeconds))),
                ("ready", .bool(readiness.isReady)),
                ("listening", .bool(readiness.isListening)),
                ("broker_connected", .bool(link.isConnected)),
                ("broker", .string(Self.withoutCredentials(startup.mqtt.url))),
                ("embedded_broker", embedded),
                ("devices_connected", .number(JSONNumber(devices.count))),
                ("messages_in_per_s", .number(Self.rounded(rates.inPerSecond))),
                ("messages_out_per_s", .number(Self.rounded(rates.outPerSecond))),
            ]))),
            ("spool", .object(JSONObject([
                ("entries", .number(JSONNumber(spool.depth))),
                ("bytes", .number(JSONNumber(spool.bytes))),
                ("oldest_age_s", .number(Self.rounded(Double(spool.oldestAgeMs) / 1000))),
                ("max_bytes", .number(JSONNumber(startup.spool.maxBytes))),
                ("dropped", .number(JSONNumber(spool.dropped))),
                ("expired", .number(JSONNumber(spool.expired))),
                // False while the spool is off or the disk refuses writes: then, with the broker unreachable,
                // messages that must be safe are refused (`broker_unavailable`); `problem` says why.
                ("available", .bool(spool.problem == nil)),
                ("problem", spool.problem.map(JSONValue.string) ?? .null),
            ]))),
            ("devices", .array(devices)),
        ]))
    }

    /// `mqtt://user:secret@host:1883` → `mqtt://host:1883`: the page is served without authentication.
    static func withoutCredentials(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else { return url }
        return String(url[..<scheme.upperBound] + url[url.index(after: at)...])
    }

    /// One decimal is plenty for a person reading rates.
    private static func rounded(_ value: Double) -> JSONNumber {
        JSONNumber((value * 10).rounded() / 10) ?? JSONNumber(0)
    }
}
