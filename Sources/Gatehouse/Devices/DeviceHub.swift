import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import Synchronization

/// What a device connection hands on: its well-formed messages and its end. `DeviceHub` is the real one;
/// `DeviceFrameHandler` tests record what arrives.
protocol DeviceMessageSink: Sendable {
    /// One well-formed text message, on the session's event loop, that arrived at `nowMs` (wall clock, ms); `settings`
    /// are the connection's current snapshot. Returns why the message is refused as a bad one after all (a state
    /// document that would grow too big), if it is.
    func handle(_ message: DeviceMessage, from session: DeviceSession, settings: LiveSettings, nowMs now: Int64) -> BadMessageError?
    /// One well-formed binary media frame.
    func handleMedia(header: MediaHeader, payload: ByteBuffer, from session: DeviceSession)
    /// The connection closed.
    func disconnected(_ session: DeviceSession)
}

/// The device side of the gateway: sessions from connect to disconnect, their messages turned into
/// publishes and the publish outcomes into acks, and their retained availability and meta.
///
/// Owns nothing but its wiring: sessions live in `DeviceDirectory`. Calls `BrokerLink` (publishing),
/// `CommandRouter` (answers to commands, queued commands on connect) and `HomeAssistantAnnouncer`.
final class DeviceHub: DeviceMessageSink {
    private let gatewayID: String
    private let topics: Topics
    private let heartbeatSeconds: Int
    private let telemetryQoS: Int
    private let link: BrokerLink
    private let directory: DeviceDirectory
    private let commands: CommandRouter
    private let homeAssistant: HomeAssistantAnnouncer
    private let desired: DesiredStateKeeper
    private let settings: SettingsStore
    private let metrics: GatewayMetrics
    /// Whether the mirrors are in step with the broker (a meta made from the token waits until then).
    private let readiness: Readiness
    private let logger: Logger
    /// `offline` availability refused while the broker was away, by device: published once the broker is
    /// back and its retained availability still names that session here.
    private let owedOffline = Mutex<[String: Availability]>([:])
    /// Live view (§8): told about camera connections and handed live frames.
    private let live: LiveView?
    /// The frames for the devices of each event loop (see `LoopFrames`).
    private let loopFrames = PerEventLoop { LoopFrames(loop: $0) }

    init(
        gatewayID: String, topics: Topics, heartbeatSeconds: Int, telemetryQoS: Int, link: BrokerLink, directory: DeviceDirectory,
        commands: CommandRouter, homeAssistant: HomeAssistantAnnouncer, desired: DesiredStateKeeper, settings: SettingsStore,
        metrics: GatewayMetrics, readiness: Readiness, logger: Logger, live: LiveView? = nil
    ) {
        self.desired = desired
        self.gatewayID = gatewayID
        self.topics = topics
        self.heartbeatSeconds = heartbeatSeconds
        self.telemetryQoS = telemetryQoS
        self.link = link
        self.directory = directory
        self.commands = commands
        self.homeAssistant = homeAssistant
        self.settings = settings
        self.metrics = metrics
        self.readiness = readiness
        self.logger = logger
        self.live = live
    }

    /// A held device's kind: from its `hello` (meta), else from its token.
    func kind(of session: DeviceSession) -> String? {
        directory.meta(session.device)?.kind ?? session.tokenKind
    }

    // MARK: Connections

    /// A device passed admission and the WebSocket upgrade: replace any older session, greet it, announce
    /// it online and hand it the commands queued while it was away. On the channel's loop; `output` is the
    /// connection's send-queue cap, the way out for the frames its loop's `LoopFrames` encodes.
    func connected(claims: TokenClaims, channel: any Channel, output: SendQueueLimit, remote: String) -> DeviceSession {
        let now = nowMs()
        let device = claims.subject
        let session = DeviceSession(
            device: device, tokenKind: claims.kind, tokenID: claims.tokenID,
            number: directory.nextSessionNumber(device, now: now),
            connectedAt: now, remote: remote, channel: channel, output: output, frames: loopFrames[channel.eventLoop],
            metrics: metrics
        )
        // Queued before the session is in the directory: whatever another thread sends it once it finds it there (a
        // command, a camera's `start`) is queued after `welcome`, which must come first.
        session.send(.welcome(
            device: device, gateway: gatewayID, session: session.number,
            heartbeatS: heartbeatSeconds, maxMessageBytes: settings.now.limits.maxMessageBytes
        ))
        if let previous = directory.attach(session) {
            previous.close(.replaced, reason: .disconnected, text: "replaced by a newer connection")
            if previous === session { return session }  // a newer connect of the device got there first
        }
        metrics.connected(directory.count)
        desired.deviceConnected(session)
        announce(session)
        // Unknown meta: only once in step with the broker, whose retained meta (capabilities) it would replace;
        // otherwise `republishDocuments` makes it when the broker is back.
        if directory.meta(device) == nil, readiness.isBrokerReady { publishTokenMeta(of: session) }
        homeAssistant.announce(device)
        // An `exp` centuries away (even Int64.max) is valid: it just never comes while connected.
        if let expiry = claims.expiresAt, expiry < Int64.max / 1000, expiry * 1000 - nowMs() < 100 * 365 * 86_400_000 {
            let delay = max(0, expiry * 1000 - nowMs())
            session.expiryTimer = channel.eventLoop.scheduleTask(in: .milliseconds(delay)) { [weak session] in
                session?.close(.tokenExpired, reason: .tokenExpired, text: "token expired")
            }
        }
        commands.deliverQueued(to: session)
        live?.cameraConnected(session)
        logger.info("device connected", metadata: ["device": "\(device)", "session": "\(session.number)", "remote": "\(remote)"])
        return session
    }

    /// The connection closed: unless a newer session took over, publish `offline` with the reason.
    func disconnected(_ session: DeviceSession) {
        session.expiryTimer?.cancel()
        let reason = session.closeReason ?? .connectionLost
        // Out of the directory first: a request or viewer handled meanwhile on another thread then finds no session
        // (or the newer one), never this ending one after its commands and viewers were answered below.
        let detached = directory.detach(session)
        live?.cameraDisconnected(session)
        commands.connectionEnded(session)
        guard detached else { return }
        metrics.connected(directory.count)
        logger.info("device disconnected", metadata: ["device": "\(session.device)", "reason": "\(reason.rawValue)"])
        // Taken over by another gateway: its `online` is the truth now.
        if let known = directory.availability(session.device), known.gateway != gatewayID || known.session != session.number { return }
        publishOffline(session.device, session: session.number, reason: reason)
    }

    /// Graceful shutdown: every held device is closed with 1001 and published `offline`. Returns the
    /// connections' close futures: each completes after its closing handshake, or the session's close
    /// timeouts (at most ten seconds).
    func closeAll() -> [EventLoopFuture<Void>] {
        directory.sessions.map { session in
            session.close(.goingAway, reason: .gatewayShutdown, text: "gateway shutting down")
            if directory.detach(session) {
                publishOffline(session.device, session: session.number, reason: .gatewayShutdown)
            }
            return session.channel.closeFuture
        }
    }

    // MARK: Retained documents

    /// Publishes the retained `online` availability of a held session (also after every broker reconnect);
    /// never over a newer session known elsewhere (PROTOCOL.md §4: the higher session wins).
    func announce(_ session: DeviceSession) {
        let availability = Availability(state: .online, gateway: gatewayID, session: session.number, ts: nowMs(), reason: nil)
        guard directory.observe(availability: availability, of: session.device) else { return }
        link.publish(OutboundMessage(topic: topics.availability(session.device), payload: availability.encoded(), retain: true), .bestEffort(.atLeastOnce))
    }

    /// Publishes a retained `offline` availability naming this gateway; never over a newer session known
    /// elsewhere (the device connected to another gateway since). Refused while the broker is away, it is
    /// owed until `publishOwedOffline` finds the broker's copy still naming this session.
    func publishOffline(_ device: String, session: Int64, reason: OfflineReason) {
        let availability = Availability(state: .offline, gateway: gatewayID, session: session, ts: nowMs(), reason: reason.rawValue)
        guard directory.observe(availability: availability, of: device) else { return }
        publishOffline(availability, of: device)
    }

    /// The broker's retained availability of `device` still says `online` with `session` of this gateway,
    /// though that session ended here: publishes its `offline` if it was refused while the broker was away.
    /// (Otherwise that `offline` is simply on its way.)
    func publishOwedOffline(_ device: String, session: Int64) {
        let owed: Availability? = owedOffline.withLock { owed in
            guard owed[device]?.session == session else { return nil }
            return owed.removeValue(forKey: device)
        }
        if let owed { publishOffline(owed, of: device) }
    }

    private func publishOffline(_ availability: Availability, of device: String) {
        let message = OutboundMessage(topic: topics.availability(device), payload: availability.encoded(), retain: true)
        link.publish(message, .bestEffort(.atLeastOnce)) { [self] outcome in
            owedOffline.withLock { owed in
                if outcome == .safe {
                    if owed[device]?.session == availability.session { owed[device] = nil }
                } else if (owed[device]?.session ?? .min) <= availability.session {
                    owed[device] = availability
                }
            }
        }
    }

    /// After a broker reconnect, on the device's event loop (so a state patch being handled cannot be
    /// overtaken by an older document) and through the outbox (so it lands after older spooled versions):
    /// the held device's meta and state again.
    func republishDocuments(of session: DeviceSession) {
        session.channel.eventLoop.execute { [self] in
            let device = session.device
            if let meta = directory.meta(device) {
                link.publish(OutboundMessage(topic: topics.meta(device), payload: meta.encoded(), retain: true), .mustBeSafe(device: device, source: nil))
            } else {
                publishTokenMeta(of: session)
            }
            if let state = directory.stateDocument(device) {
                link.publish(OutboundMessage(topic: topics.state(device), payload: state.encoded(), retain: true), .mustBeSafe(device: device, source: nil))
            }
            homeAssistant.announce(device)
        }
    }

    /// Publishes the device's current state document again, through the outbox (so it lands after older
    /// spooled versions); for a held device on its event loop, so a patch being handled cannot be overtaken
    /// by an older document. Reads the document when it runs: what goes out is the newest.
    func republishState(of device: String) {
        let publish: @Sendable () -> Void = { [self] in
            guard let state = directory.stateDocument(device) else { return }
            link.publish(OutboundMessage(topic: topics.state(device), payload: state.encoded(), retain: true), .mustBeSafe(device: device, source: nil))
        }
        if let session = directory.session(device) { session.channel.eventLoop.execute(publish) } else { publish() }
    }

    /// The meta of a device that sent no `hello` and has none on the broker: `kind` from its token.
    private func publishTokenMeta(of session: DeviceSession) {
        publishMeta(DeviceMeta(ts: nowMs(), kind: session.tokenKind, model: nil, firmware: nil, capabilities: nil), of: session.device)
    }

    private func publishMeta(_ meta: DeviceMeta, of device: String, source: (any PublishSource)? = nil, completion: PublishCompletion? = nil) {
        directory.record(meta: meta, of: device)
        link.publish(
            OutboundMessage(topic: topics.meta(device), payload: meta.encoded(), retain: true),
            .mustBeSafe(device: device, source: source), completion: completion)
    }

    // MARK: Messages

    /// Handles one well-formed device message: publish it, then `ack` its `seq` once it is safe.
    func handle(_ message: DeviceMessage, from session: DeviceSession, settings: LiveSettings, nowMs now: Int64) -> BadMessageError? {
        let device = session.device
        let seq = message.seq
        // Made only where a completion is kept (a QoS 0 telemetry message usually has its outcome at once).
        func answer() -> PublishCompletion? {
            guard let seq else { return nil }
            return { outcome in session.answer(seq: seq, outcome) }
        }
        var safely: Durability { .mustBeSafe(device: device, source: session) }  // not made for QoS 0 telemetry
        metrics.received(.init(message.body))
        switch message.body {
        case .telemetry(let data, let ts, let qos):
            session.noteTelemetry(data, ts: ts, receivedMs: now)
            if let discovery = settings.homeAssistant { homeAssistant.discoverSensors(in: data.object, of: device, discovery) }
            // Without the device's `ts`, the time of receipt (written as digits, no `JSONNumber` made of it).
            let payload = session.telemetryPayload { payload in
                if let ts {
                    TelemetryPayload.encode(ts: ts, seq: seq, data: data, into: &payload)
                } else {
                    TelemetryPayload.encode(receivedMs: now, seq: seq, data: data, into: &payload)
                }
            }
            let message = OutboundMessage(topic: session.telemetryTopic(topics), payload: payload)
            if (qos ?? telemetryQoS) == 0 {
                let outcome = link.publishAtMostOnce(message, typeIndex: GatewayMetrics.telemetryTypeIndex, device: device, source: session, later: answer)
                if let outcome, let seq { session.answer(seq: seq, outcome) }
            } else {
                link.publish(message, safely, completion: answer())
            }
        case .state(let patch):
            guard let document = directory.applyStatePatch(patch, of: device, now: now, maxBytes: settings.limits.maxStateBytes) else {
                return BadMessageError(seq: seq, message: "the merged state would be longer than \(settings.limits.maxStateBytes) bytes")
            }
            link.publish(OutboundMessage(topic: topics.state(device), payload: document.encoded(), retain: true), safely, completion: answer())
            desired.reportedStateChanged(document, of: device)
        case .event(let name, let data, let ts):
            let payload: JSONValue = ["ts": .number(ts ?? JSONNumber(now)), "data": data]
            link.publish(OutboundMessage(topic: topics.event(device, name), payload: payload.serialized()), safely, completion: answer())
        case .hello(let hello):
            let meta = DeviceMeta(
                ts: now, kind: hello.kind ?? session.tokenKind, model: hello.model,
                firmware: hello.firmware, capabilities: hello.capabilities
            )
            let previous = directory.meta(device)
            publishMeta(meta, of: device, source: session, completion: answer())
            // A repeated hello announces the same entities: they are not all published again for each one.
            if !meta.saysTheSame(as: previous) { homeAssistant.announce(device) }
        case .response(let commandID, let status, let data, let error):
            let answered = commands.answer(commandID, from: session, status: status, data: data, error: error, completion: answer())
            if !answered, let seq {
                session.answer(seq: seq, .refused(.unknownID, "no open command with id \(commandID.text)"))
            }
        }
        return nil
    }

    /// A binary media frame: published raw at QoS 0. It completes the command it names only once it was
    /// handed to the broker: media refused during an outage leaves the command open (the device may send
    /// it again) until its deadline.
    func handleMedia(header: MediaHeader, payload: ByteBuffer, from session: DeviceSession) {
        if header.stream == LiveControl.stream, let live {
            live.frame(payload, from: session)
            guard live.publishesToMQTT else { return }
        }
        let topic = topics.media(session.device, header.stream)
        let bytes = Array(payload.readableBytesView)
        metrics.received(.media)
        let properties = MQTTProperties(contentType: header.contentType)
        let retain = header.stream == "snapshot" && settings.now.homeAssistant?.retainSnapshots == true
        let message = OutboundMessage(topic: topic, payload: bytes, retain: retain, properties: properties)
        link.publish(message, .bestEffort(.atMostOnce, device: session.device, source: session)) { [commands] outcome in
            guard outcome == .safe, let id = header.id else { return }
            commands.answerWithMedia(id, from: session, topic: topic, bytes: bytes.count, contentType: header.contentType)
        }
    }
}
