import Logging
import GatehouseProtocol
import Mosquitto
import NIOCore

extension Gateway {
    /// A device passed authentication and the WebSocket upgrade: replace any older session, greet it,
    /// announce it online and hand it the commands queued while it was away.
    func deviceConnected(claims: TokenClaims, channel: any Channel, remote: String) -> DeviceSession {
        let now = nowMs()
        let device = claims.subject
        let session = DeviceSession(
            device: device, tokenKind: claims.kind, tokenID: claims.tokenID,
            session: directory.nextSessionNumber(device, now: now),
            connectedAt: now, remote: remote, channel: channel
        )
        if let previous = directory.attach(session) {
            previous.close(.replaced, reason: .disconnected, text: "replaced by a newer connection")
        }
        metrics.connected(directory.count)
        session.send(.welcome(
            device: device, gateway: id, session: session.session,
            heartbeatS: config.gateway.heartbeatSeconds, maxMessageBytes: limits.maxMessageBytes
        ))
        announce(session)
        if directory.meta(device) == nil {
            publishMeta(DeviceMeta(ts: now, kind: claims.kind, model: nil, firmware: nil, capabilities: nil), of: device)
        }
        announceToHomeAssistant(device)
        // An `exp` centuries away (even Int64.max) is valid: it just never comes while connected.
        if let expiry = claims.expiresAt, expiry < Int64.max / 1000, expiry * 1000 - nowMs() < 100 * 365 * 86_400_000 {
            let delay = max(0, expiry * 1000 - nowMs())
            channel.eventLoop.scheduleTask(in: .milliseconds(delay)) {
                session.close(.tokenExpired, reason: .tokenExpired, text: "token expired")
            }
        }
        deliverQueuedCommands(to: session)
        logger.info("device connected", metadata: ["device": "\(device)", "session": "\(session.session)", "remote": "\(remote)"])
        return session
    }

    /// Publishes the retained `online` availability of a held session (also after every broker reconnect).
    func announce(_ session: DeviceSession) {
        let availability = Availability(state: "online", gateway: id, session: session.session, ts: nowMs(), reason: nil)
        directory.observe(availability: availability, of: session.device)
        publish(topics.availability(session.device), availability.encoded(), retain: true)
    }

    /// The connection closed: unless a newer session took over, publish `offline` with the reason.
    func deviceDisconnected(_ session: DeviceSession) {
        let reason = session.closeReason ?? .connectionLost
        guard directory.detach(session) else { return }
        metrics.connected(directory.count)
        logger.info("device disconnected", metadata: ["device": "\(session.device)", "reason": "\(reason.rawValue)"])
        // Taken over by another gateway: its `online` is the truth now.
        if let known = directory.availability(session.device), known.gateway != id || known.session != session.session { return }
        publishOffline(session.device, session: session.session, reason: reason)
    }

    /// Publishes a retained `offline` availability naming this gateway.
    func publishOffline(_ device: String, session: Int64, reason: OfflineReason, completion: (@Sendable (MosquittoError?) -> Void)? = nil) {
        let availability = Availability(state: "offline", gateway: id, session: session, ts: nowMs(), reason: reason.rawValue)
        directory.observe(availability: availability, of: device)
        publish(topics.availability(device), availability.encoded(), retain: true, completion: completion)
    }

    func publishMeta(_ meta: DeviceMeta, of device: String, completion: Outbox.Completion? = nil) {
        directory.observe(meta: meta, of: device)
        publishSafely(topics.meta(device), meta.encoded(), of: device, retain: true, completion: completion)
    }

    /// Handles one well-formed device message: publish it, then `ack` its `seq` once it is safe.
    func handle(_ message: DeviceMessage, from session: DeviceSession) {
        let device = session.device
        let now = nowMs()
        let answer = acknowledger(seq: message.seq, session: session)
        metrics.received(message.body.type)
        switch message.body {
        case .telemetry(let data, let ts, let qos):
            var payload = JSONObject()
            payload["ts"] = .number(ts ?? JSONNumber(now))
            if let seq = message.seq { payload["seq"] = .number(JSONNumber(seq)) }
            payload["data"] = .object(data)
            discoverSensors(in: data, of: device)
            if (qos ?? config.mqtt.telemetryQoS) == 0 {
                publish(topics.telemetry(device), JSONValue.object(payload).serialized(), qos: .atMostOnce) { error in
                    answer?(error.map(Outbox.outcome) ?? .safe)
                }
            } else {
                publishSafely(topics.telemetry(device), JSONValue.object(payload).serialized(), of: device, completion: answer)
            }
        case .state(let patch):
            let document = directory.applyStatePatch(patch, of: device, now: now)
            publishSafely(topics.state(device), document.encoded(), of: device, retain: true, completion: answer)
        case .event(let name, let data, let ts):
            let payload: JSONValue = ["ts": .number(ts ?? JSONNumber(now)), "data": data]
            publishSafely(topics.event(device, name), payload.serialized(), of: device, completion: answer)
        case .hello(let hello):
            let meta = DeviceMeta(
                ts: now, kind: hello.kind ?? session.tokenKind, model: hello.model,
                firmware: hello.firmware, capabilities: hello.capabilities
            )
            publishMeta(meta, of: device, completion: answer)
            announceToHomeAssistant(device)
        case .response(let commandID, let status, let data, let error):
            guard let command = commands.take(commandID.text, device: device) else {
                if let seq = message.seq {
                    metrics.nacked(.unknownID)
                    session.send(.nack(seq: seq, code: NackCode.unknownID.rawValue, message: "no open command with id \(commandID.text)"))
                }
                return
            }
            let response = CommandResponse(id: command.id.json, status: status, data: data, error: status == .ok ? nil : error, ts: now)
            finish(command, with: response, completion: answer)
        }
    }

    /// A binary media frame: published raw at QoS 0; completes the command it names, if any.
    func handleMedia(header: MediaHeader, payload: ByteBuffer, from session: DeviceSession) {
        let topic = topics.media(session.device, header.stream)
        let bytes = Array(payload.readableBytesView)
        metrics.received("media")
        publish(topic, bytes, qos: .atMostOnce, properties: MQTTProperties(contentType: header.contentType))
        guard let id = header.id, let command = commands.take(id.text, device: session.device) else { return }
        let data: JSONValue = ["topic": .string(topic), "bytes": .number(JSONNumber(bytes.count)), "content_type": .string(header.contentType)]
        finish(command, with: CommandResponse(id: command.id.json, status: .ok, data: data, error: nil, ts: nowMs()))
    }

    /// The completion that answers a device message once its publish is safe (or refused).
    private func acknowledger(seq: UInt64?, session: DeviceSession) -> Outbox.Completion? {
        guard let seq else { return nil }
        let metrics = self.metrics
        return { outcome in
            switch outcome {
            case .safe:
                metrics.acked()
                session.sendText(Array(GatewayMessage.ackString(seq: seq).utf8))
            case .refused(let code, let message):
                metrics.nacked(code)
                session.send(.nack(seq: seq, code: code.rawValue, message: message))
            }
        }
    }
}
