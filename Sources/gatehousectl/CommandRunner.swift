import ArgumentParser
import GatehouseProtocol
import Mosquitto

/// Sends one command request the way any MQTT client may (PROTOCOL.md section 5) and reports its response.
///
/// The request carries an MQTT 5 Response Topic private to this run (`<base>/ctl/<random>/reply`) and the command
/// id as Correlation Data; the reply topic is subscribed before publishing, so the answer cannot be missed. The
/// device's public `response/<command>` topic is watched too, matched by id, in case a gateway answers only there.
struct CommandRunner {
    /// Target device.
    var device: String
    /// Command name (topic level of `request/<command>`).
    var command: String
    /// Parameters.
    var params: JSONObject
    /// Timeout, TTL, id.
    var options: CommandOptions
    /// Print JSON instead of text.
    var json: Bool

    /// Publishes the request and waits; returns normally only for status `ok` (or `queued` when not waiting for
    /// the final answer).
    ///
    /// - Throws: `ExitCode(1)` for other final statuses (already printed), `CtlError` with `.noResponse` when
    ///   nothing arrived in time, `.usage` for argument and broker errors.
    func run(broker: BrokerOptions) async throws {
        try DeviceArgument.validate(device)
        guard Identifiers.isValidCommandName(command) else {
            throw CtlError.usage("invalid command name '\(command)': use 1-64 of A-Z a-z 0-9 . _ -")
        }
        let id = options.id ?? "ctl-\(RandomID.hex(bytes: 6))"
        let request = JSONValue.objectOf([
            ("id", .string(id)),
            ("params", .object(params)),
            ("timeout_ms", .number(JSONNumber(options.timeout.milliseconds))),
            ("ttl_ms", .number(JSONNumber(options.ttl.milliseconds))),
        ])
        let outcome = try await broker.withSession { session, inbox in
            let topics = session.topics
            let replyTopic = "\(topics.base)/ctl/\(RandomID.hex(bytes: 8))/reply"
            let responseTopic = topics.response(device, command)
            try await session.subscribe([replyTopic, responseTopic])
            try await session.publish(
                topics.request(device, command),
                request.serialized(),
                properties: MQTTProperties(responseTopic: replyTopic, correlationData: Array(id.utf8))
            )
            let wait = DurationArgument(milliseconds: options.timeout.milliseconds + options.ttl.milliseconds + 5000)
            let deadline = ContinuousClock.now + wait.duration
            var sawQueued = false
            while let message = await inbox.next(before: deadline) {
                guard message.topic == replyTopic || message.topic == responseTopic,
                    let response = try? JSONValue(parsing: message.payload),
                    Self.matches(message, response: response, id: id, replyTopic: replyTopic),
                    let status = response["status"]?.stringValue
                else { continue }
                if status == CommandStatus.queued.rawValue {
                    if !sawQueued { printQueued(response) }
                    sawQueued = true
                    if options.ttl.milliseconds > 0, !options.waitFinal { return Outcome.queued }
                    continue
                }
                printFinal(response, status: status)
                return status == CommandStatus.ok.rawValue ? Outcome.ok : Outcome.failed
            }
            throw CtlError(
                .noResponse,
                "no response to \(command) (id \(id)) from \(device) within \(wait)"
                    + (sawQueued
                        ? " (the command is still queued)"
                        : "; is a gateway running on base topic '\(topics.base)'?")
            )
        }
        if outcome == .failed { throw ExitCode(CtlError.Code.failed.rawValue) }
    }

    /// How the command ended.
    private enum Outcome: Sendable, Equatable {
        case ok, queued, failed
    }

    /// True when `message` answers the request with `id`: by Correlation Data on the private reply topic (by the
    /// `id` field when a broker dropped the property), by the `id` field on the public response topic.
    private static func matches(_ message: MQTTMessage, response: JSONValue, id: String, replyTopic: String) -> Bool {
        if message.topic == replyTopic, let correlation = message.properties.correlationData {
            return correlation == Array(id.utf8)
        }
        switch response["id"] {
        case .string(let text): return text == id
        case .number(let number): return number.text == id
        default: return false
        }
    }

    private func printQueued(_ response: JSONValue) {
        if json {
            Output.json(response)
        } else {
            Output.line(
                "queued: \(device) is offline, the command will be delivered if it connects within \(options.ttl)"
            )
        }
    }

    private func printFinal(_ response: JSONValue, status: String) {
        if json {
            Output.json(response)
            return
        }
        if status == CommandStatus.ok.rawValue {
            let data = response["data"] ?? .null
            Output.line(data.isNull ? "ok" : "ok \(data.serializedString())")
            return
        }
        var text = status
        if let error = response["error"] {
            let code = error["code"]?.stringValue
            let message = error["message"]?.stringValue
            // `offline: ...` reads better than `offline offline: ...` for statuses whose code repeats them.
            let shownCode = code == status ? nil : code
            switch (shownCode, message) {
            case (let code?, let message?): text += " \(code): \(message)"
            case (let code?, nil): text += " \(code)"
            case (nil, let message?): text += ": \(message)"
            case (nil, nil): break
            }
        }
        Output.line(text)
    }
}
