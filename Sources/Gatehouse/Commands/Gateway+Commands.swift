import Logging
import GatehouseProtocol
import Mosquitto
import NIOCore

extension Gateway {
    /// Which subscription a request arrived through (MQTT 5 Subscription Identifier).
    enum RequestRoute {
        /// The plain subscription: this gateway acts only for devices it holds.
        case holder
        /// The shared subscription: exactly one gateway gets it and answers when nobody holds the device.
        case shared
    }

    /// A message on `<base>/<dev>/request/<command>` or `<base>/<dev>/set`.
    func handleRequest(device: String, command name: String, message: MQTTMessage, route: RequestRoute, isSet: Bool) {
        guard Identifiers.isValidDeviceID(device) else { return }
        let session = directory.session(device)
        switch route {
        case .holder where session == nil: return
        case .shared where session != nil || directory.holder(of: device, myself: id) != nil: return
        default: break
        }
        let replyTo = message.properties.responseTopic.map { ReplyTo(topic: $0, correlationData: message.properties.correlationData) }
        let parsed = isSet ? CommandRequestParser.parseSet(message.payload) : CommandRequestParser.parseRequest(message.payload)
        let request: CommandRequest
        switch parsed {
        case .failure(let error):
            respond(device: device, command: name, id: error.rawID ?? .null, status: .rejected,
                    error: (.badRequest, error.message), replyTo: replyTo)
            return
        case .success(let value):
            request = value
        }
        let commandID = request.id ?? CommandID(generated: "gh-\(id)-\(nowMs())-\(UInt32.random(in: 0...UInt32.max))")
        if let refusal = refusal(for: name, params: request.params, device: device) {
            respond(device: device, command: name, id: commandID.json, status: .rejected, error: refusal, replyTo: replyTo)
            return
        }
        let timeoutMs = request.timeoutMs ?? Int64(config.commands.defaultTimeoutMs)
        if let session {
            deliver(commandID, name: name, params: request.params, timeoutMs: timeoutMs, replyTo: replyTo, to: session)
            return
        }
        let ttl = request.ttlMs ?? 0
        guard ttl > 0 else {
            respond(device: device, command: name, id: commandID.json, status: .offline,
                    error: (.offline, "device \(device) is not connected"), replyTo: replyTo)
            return
        }
        guard pending.count(for: device) < config.commands.maxPendingPerDevice else {
            respond(device: device, command: name, id: commandID.json, status: .rejected,
                    error: (.queueFull, "\(config.commands.maxPendingPerDevice) commands already wait for \(device)"), replyTo: replyTo)
            return
        }
        let now = nowMs()
        let queued = PendingCommand(
            id: commandID, device: device, name: name, params: request.params, timeoutMs: timeoutMs,
            queuedAt: now, expiresAt: now + ttl, gateway: id, replyTo: replyTo
        )
        pending.observe(queued, device: device, id: commandID.text)
        let expiry = UInt32((ttl + 999) / 1000)
        publish(topics.pending(device, commandID.text), queued.encoded(), retain: true,
                properties: MQTTProperties(messageExpiryInterval: expiry))
        respond(device: device, command: name, id: commandID.json, status: .queued, error: nil, replyTo: replyTo)
        scheduleExpiry(of: queued)
    }

    /// Why the gateway refuses a command before delivery, if it does.
    private func refusal(for name: String, params: JSONObject, device: String) -> (CommandErrorCode, String)? {
        if commands.count(for: device) + pending.count(for: device) >= config.commands.maxPendingPerDevice,
           directory.session(device) != nil {
            return (.queueFull, "\(config.commands.maxPendingPerDevice) commands already open for \(device)")
        }
        let capabilities = Capabilities(directory.meta(device)?.capabilities)
        switch capabilities.check(command: name, params: params) {
        case .accepted: return nil
        case .unknownCommand(let message): return (.unknownCommand, message)
        case .badParams(let message): return (.badParams, message)
        }
    }

    /// Sends a command to a connected device and starts its deadline.
    func deliver(_ commandID: CommandID, name: String, params: JSONObject, timeoutMs: Int64, replyTo: ReplyTo?, to session: DeviceSession) {
        if commands.contains(commandID, device: session.device) {
            respond(device: session.device, command: name, id: commandID.json, status: .rejected,
                    error: (.badRequest, "a command with id \(commandID.text) is already open"), replyTo: replyTo)
            return
        }
        let deadline = nowMs() + timeoutMs
        let device = session.device
        let timer = timerLoop.scheduleTask(in: .milliseconds(timeoutMs)) { [self] in
            guard let command = commands.take(commandID.text, device: device) else { return }
            finish(command, with: CommandResponse(
                id: command.id.json, status: .timeout, data: nil,
                error: errorObject(.timeout, "no answer from \(device) within \(timeoutMs) ms"), ts: nowMs()
            ))
        }
        commands.insert(OpenCommand(id: commandID, device: device, name: name, replyTo: replyTo, sentAt: deadline - timeoutMs, deadline: deadline, timer: timer))
        metrics.commandDelivered()
        session.send(.command(id: commandID, name: name, params: params, deadline: deadline))
    }

    /// Hands a newly connected device the commands queued for it, oldest first, clearing each.
    func deliverQueuedCommands(to session: DeviceSession) {
        for command in pending.takeAll(device: session.device) {
            publish(topics.pending(session.device, command.id.text), [], retain: true)
            deliver(command.id, name: command.name, params: command.params,
                    timeoutMs: command.timeoutMs, replyTo: command.replyTo, to: session)
        }
    }

    /// After `ttl_ms` a queued command that was not delivered gets `expired`.
    func scheduleExpiry(of command: PendingCommand) {
        let delay = max(0, command.expiresAt - nowMs())
        timerLoop.scheduleTask(in: .milliseconds(delay)) { [self] in
            guard answersExpiry(of: command), let expired = pending.take(device: command.device, id: command.id.text) else { return }
            publish(topics.pending(command.device, command.id.text), [], retain: true)
            respond(device: command.device, command: command.name, id: expired.id.json, status: .expired,
                    error: (.expired, "\(command.device) did not connect within the TTL"), replyTo: expired.replyTo)
        }
    }

    /// The gateway that queued a command answers its expiry (also after it restarted); while that gateway is
    /// offline, the online gateway with the smallest id does.
    private func answersExpiry(of command: PendingCommand) -> Bool {
        if command.gateway == id { return true }
        let online = directory.onlineGateways
        return !online.contains(command.gateway) && online.union([id]).min() == id
    }

    /// Publishes the final response of a delivered command.
    func finish(_ command: OpenCommand, with response: CommandResponse, completion: Outbox.Completion? = nil) {
        metrics.commandFinished(response.status, latencyMs: nowMs() - command.sentAt)
        publishResponse(response, device: command.device, command: command.name, replyTo: command.replyTo, completion: completion)
    }

    /// Publishes a gateway-made response (rejected, offline, queued, expired).
    func respond(device: String, command: String, id: JSONValue, status: CommandStatus,
                 error: (CommandErrorCode, String)?, replyTo: ReplyTo?) {
        if status != .queued { metrics.commandFinished(status, latencyMs: nil) }
        let response = CommandResponse(id: id, status: status, data: nil, error: error.map { errorObject($0.0, $0.1) }, ts: nowMs())
        publishResponse(response, device: device, command: command, replyTo: replyTo)
    }

    private func publishResponse(_ response: CommandResponse, device: String, command: String, replyTo: ReplyTo?,
                                 completion: Outbox.Completion? = nil) {
        let payload = response.encoded()
        publishSafely(topics.response(device, command), payload, of: device, completion: completion)
        if let replyTo {
            publishSafely(replyTo.topic, payload, of: device, correlationData: replyTo.correlationData)
        }
    }

    func errorObject(_ code: CommandErrorCode, _ message: String) -> JSONObject {
        JSONObject([("code", .string(code.rawValue)), ("message", .string(message))])
    }
}
