import GatehouseProtocol
import Logging
import Mosquitto
import NIOCore
import Synchronization

/// Commands from MQTT to devices: routes each request (the holder acts, exactly one gateway answers for a
/// device nobody holds), delivers it, times it, queues it while the device is away (`ttl_ms`), and
/// publishes exactly one final response per request.
///
/// Owns the open commands (`CommandBook`) and the mirror of the queued ones (`PendingQueue`). Calls
/// `BrokerLink` (responses, pending documents) and reads `DeviceDirectory` (sessions, meta, holders).
final class CommandRouter: Sendable {
    /// Which subscription a request arrived through (MQTT 5 Subscription Identifier).
    enum RequestRoute: Equatable {
        /// The plain subscription: this gateway acts only for devices it holds.
        case holder
        /// The shared subscription: exactly one gateway gets it and answers when nobody holds the device.
        case shared
    }

    private let gatewayID: String
    private let topics: Topics
    private let config: CommandsSection
    private let link: BrokerLink
    private let directory: DeviceDirectory
    private let metrics: GatewayMetrics
    /// Whether the mirrors are in step with the broker (expiries are answered only then).
    private let readiness: Readiness
    /// Command deadlines and expiries run on this loop.
    private let timerLoop: any EventLoop
    private let open = CommandBook()
    private let pending = PendingQueue()
    private let copies = RequestCopies()
    /// The one timer for queued commands' expiries, armed for the earliest `expires_at` to come. (A timer per command
    /// outlived a command cleared before its TTL: a `pending/<id>` planted and cleared again and again piled them up,
    /// each for up to 31 days.)
    private let expiryTimer = Mutex<(dueMs: Int64, task: Scheduled<Void>)?>(nil)

    init(gatewayID: String, topics: Topics, config: CommandsSection, link: BrokerLink, directory: DeviceDirectory,
         metrics: GatewayMetrics, readiness: Readiness, timerLoop: any EventLoop) {
        self.gatewayID = gatewayID
        self.topics = topics
        self.config = config
        self.link = link
        self.directory = directory
        self.metrics = metrics
        self.readiness = readiness
        self.timerLoop = timerLoop
    }

    /// A retained `pending/<id>` seen on the broker (nil payload = cleared). Every gateway times every
    /// queued command, so expiry is answered even if the one that queued it is gone. A payload that is not
    /// a pending command changes nothing.
    func observePending(_ payload: [UInt8], device: String, id: String) {
        var command = payload.isEmpty ? nil : PendingCommand(device: device, payload: payload)
        // Not the shape of a queued command, or one naming another id than its topic's: delivering, clearing and
        // expiring go by the payload's id, so its own topic would never be cleared and it would come back for ever.
        if !payload.isEmpty && command?.id.text != id { return }
        if let replyTo = command?.replyTo, !topics.isAllowedResponseTopic(replyTo.topic) { command?.replyTo = nil }
        // Other gateways keep to `max_pending` too; twice that leaves room for their races near it.
        switch pending.observe(command, device: device, id: id, limit: 2 * config.maxPending) {
        case .full:
            metrics.limitHit("max_pending")
        case .new:
            guard let command else { return }
            armExpiry(at: command.expiresAt)
            // Queued elsewhere while this gateway held the device unseen (a partition): deliver it now.
            if readiness.isBrokerReady, let session = directory.session(device) { deliverQueued(to: session) }
        case .taken:
            // Delivered or answered here while the broker was unreachable: it only has to be cleared.
            clearPending(device: device, id: id)
        case .known:
            // The same, or one replacing it (perhaps expiring earlier).
            if let command { armExpiry(at: command.expiresAt) }
        }
    }

    /// Restores the saved queue at start (before the broker is heard from): a device connecting meanwhile
    /// gets its queued commands, and expiries are timed.
    func restore(_ snapshot: PendingQueue.Snapshot) {
        pending.restore(snapshot)
        for command in snapshot.commands { armExpiry(at: command.expiresAt) }
    }

    /// The broker connection is back: its retained `pending/<id>` are about to be sent again.
    func beginResync() { pending.beginResync() }

    /// Every retained copy was sent again: forget what the broker no longer has, deliver what was queued for
    /// devices held here. (The expiries that fell due meanwhile are swept once the gateway is ready.)
    func endResync() {
        pending.endResync()
        for session in directory.sessions { deliverQueued(to: session) }
    }

    /// Answers every queued command whose TTL ended and whose expiry this gateway answers. Runs when the
    /// broker is back and when a gateway goes offline (its queued commands become ours to answer).
    func sweepExpired() {
        sweepExpired(at: nowMs())
    }

    private func sweepExpired(at now: Int64) {
        for command in pending.all where command.expiresAt <= now { expire(command) }
    }

    /// Saved queue (see `MirrorStore`).
    var pendingSnapshot: PendingQueue.Snapshot { pending.snapshot() }

    /// Counts changes of the saved queue.
    var pendingChanges: UInt64 { pending.changes }

    /// A device's `response` to an open command: publishes the final response (`completion` says when it is
    /// safe). False when no such command is open (answered already, timed out, or never sent).
    ///
    /// When the response cannot be made safe (the broker is away and the spool full), the device gets a
    /// `nack` and the command is open again until its deadline, so the device's resend still ends it.
    func answer(_ id: CommandID, from session: DeviceSession, status: CommandStatus, data: JSONValue, error: JSONObject?,
                completion: PublishCompletion?) -> Bool {
        guard let command = open.takeForAnswer(id.text, device: session.device) else { return false }
        let response = CommandResponse(id: command.id.json, status: status, data: data, error: status == .ok ? nil : error, ts: nowMs())
        finish(command, with: response, source: session, reopensWhenRefused: true) { [self] outcome in
            handleSettledAnswer(open.answerSettled(command, refused: outcome != .safe))
            completion?(outcome)
        }
        return true
    }

    /// A device's answer is safe (nil: nothing to do), or was refused: then its command is open again until its
    /// deadline, so that the device's resend still ends it; unless its connection has ended meanwhile, or the gateway
    /// is shutting down (`reopened` false): then it gets `offline` now.
    private func handleSettledAnswer(_ settled: (command: OpenCommand, reopened: Bool)?) {
        guard let (command, reopened) = settled else { return }
        guard reopened else {
            return answerOffline([command], because: "the gateway holding it is shutting down")
        }
        armDeadline(of: command)
        // Its connection's `connectionEnded` (which comes after the session leaves the directory) found it answering.
        guard directory.session(command.device)?.number == command.session else {
            let taken = open.take(command.id.text, device: command.device, opening: command.opening)
            return answerOffline(taken.map { [$0] } ?? [], because: "its connection ended before it answered")
        }
    }

    /// The connection of `session` ended: its commands that were delivered and not answered get `offline`.
    func connectionEnded(_ session: DeviceSession) {
        answerOffline(open.takeAll(device: session.device, session: session.number), because: "its connection ended before it answered")
    }

    /// The gateway stops: every open command gets `offline` now, not a `timeout` nobody would publish.
    func shutDown() {
        open.close()
        answerOffline(open.takeAll(), because: "the gateway holding it is shutting down")
    }

    private func answerOffline(_ commands: [OpenCommand], because reason: String) {
        for command in commands {
            finish(command, with: CommandResponse(
                id: command.id.json, status: .offline, data: nil,
                error: errorObject(.offline, "\(command.device): \(reason)"), ts: nowMs()))
        }
    }

    /// A media frame naming an open command (a snapshot, say): its final response is `ok` with where the
    /// media went.
    func answerWithMedia(_ id: CommandID, from session: DeviceSession, topic: String, bytes: Int, contentType: String) {
        guard let command = open.take(id.text, device: session.device) else { return }
        let data: JSONValue = ["topic": .string(topic), "bytes": .number(JSONNumber(bytes)), "content_type": .string(contentType)]
        finish(command, with: CommandResponse(id: command.id.json, status: .ok, data: data, error: nil, ts: nowMs()))
    }

    /// A message on `<base>/<dev>/request/<command>` or `<base>/<dev>/set`.
    func handleRequest(device: String, command name: String, message: MQTTMessage, route: RequestRoute, isSet: Bool) {
        guard Identifiers.isValidDeviceID(device) else { return }
        let session = directory.session(device)
        let wouldAct = switch route {
        case .holder: session != nil
        case .shared: session == nil && directory.holder(of: device, myself: gatewayID) == nil
        }
        guard copies.claim(message, device: device, command: name, route: route, wouldAct: wouldAct) else { return }
        // A forbidden Response Topic is dropped: the answer then goes to `response/<command>` alone.
        let replyTo = message.properties.responseTopic.flatMap { topic in
            topics.isAllowedResponseTopic(topic) ? ReplyTo(topic: topic, correlationData: message.properties.correlationData) : nil
        }
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
        let commandID = request.id ?? CommandID(generated: "gh-\(gatewayID)-\(nowMs())-\(UInt32.random(in: 0...UInt32.max))")
        if request.id != nil, open.contains(commandID, device: device) || pending.contains(device: device, id: commandID.text) {
            respond(device: device, command: name, id: commandID.json, status: .rejected,
                    error: (.badRequest, "a command with id \(commandID.text) is already open or queued for \(device)"), replyTo: replyTo)
            return
        }
        if let refusal = refusal(for: name, params: request.params, device: device) {
            respond(device: device, command: name, id: commandID.json, status: .rejected, error: refusal, replyTo: replyTo)
            return
        }
        let timeoutMs = request.timeoutMs ?? Int64(config.defaultTimeoutMs)
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
        guard pending.count(for: device) < config.maxPendingPerDevice else {
            respond(device: device, command: name, id: commandID.json, status: .rejected,
                    error: (.queueFull, "\(config.maxPendingPerDevice) commands already wait for \(device)"), replyTo: replyTo)
            return
        }
        guard pending.count < config.maxPending else {
            respond(device: device, command: name, id: commandID.json, status: .rejected,
                    error: (.queueFull, "\(config.maxPending) commands already wait for devices (commands.max_pending)"), replyTo: replyTo)
            return
        }
        let now = nowMs()
        let queued = PendingCommand(
            id: commandID, device: device, name: name, params: request.params, timeoutMs: timeoutMs,
            queuedAt: now, expiresAt: now.addingSaturated(ttl), gateway: gatewayID, replyTo: replyTo
        )
        pending.observe(queued, device: device, id: commandID.text)
        let properties = MQTTProperties(messageExpiryInterval: PendingCommand.messageExpiry(ttlMs: ttl))
        link.publish(OutboundMessage(topic: topics.pending(device, commandID.text), payload: queued.encoded(), retain: true, properties: properties), .bestEffort(.atLeastOnce))
        respond(device: device, command: name, id: commandID.json, status: .queued, error: nil, replyTo: replyTo)
        armExpiry(at: queued.expiresAt)
    }

    /// Why the gateway refuses a command before delivery, if it does.
    private func refusal(for name: String, params: JSONObject, device: String) -> (CommandErrorCode, String)? {
        if name == Topics.desiredCommand {
            return (.badRequest, "desired is not a command: publish a patch of the desired state to desired/set")
        }
        if open.count(for: device) + pending.count(for: device) >= config.maxPendingPerDevice,
           directory.session(device) != nil {
            return (.queueFull, "\(config.maxPendingPerDevice) commands already open for \(device)")
        }
        let capabilities = Capabilities(directory.meta(device)?.capabilities)
        switch capabilities.check(command: name, params: params) {
        case .accepted: return nil
        case .unknownCommand(let message): return (.unknownCommand, message)
        case .badParams(let message): return (.badParams, message)
        }
    }

    /// Sends a command to a connected device and starts its deadline.
    private func deliver(_ commandID: CommandID, name: String, params: JSONObject, timeoutMs: Int64, replyTo: ReplyTo?, to session: DeviceSession) {
        let now = nowMs()
        let delivered = OpenCommand(
            id: commandID, device: session.device, session: session.number, name: name, replyTo: replyTo, sentAt: now,
            timeoutMs: timeoutMs, deadline: now.addingSaturated(timeoutMs), timer: nil)
        guard let command = open.open(delivered) else {
            if open.isClosed {
                return respond(device: session.device, command: name, id: commandID.json, status: .offline,
                               error: (.offline, "\(session.device): the gateway holding it is shutting down"), replyTo: replyTo)
            }
            return respond(device: session.device, command: name, id: commandID.json, status: .rejected,
                           error: (.badRequest, "a command with id \(commandID.text) is already open"), replyTo: replyTo)
        }
        armDeadline(of: command)
        // The caller found the session before it may have left the directory: its `connectionEnded` (which comes
        // after) answered the commands open then, and this one, opened after that, is answered here.
        guard directory.session(session.device) === session else {
            let taken = open.take(commandID.text, device: session.device, opening: command.opening)
            answerOffline(taken.map { [$0] } ?? [], because: "its connection ended before it answered")
            return
        }
        metrics.commandDelivered()
        session.send(.command(id: commandID, name: name, params: params, deadline: command.deadline))
    }

    /// Starts the deadline of `command`, which is open: a timer that answers `timeout` then, kept with the command
    /// so that taking it cancels the timer. Armed only once the command is open, so that a deadline already past
    /// (a command opened again after its answer was refused) still finds it.
    private func armDeadline(of command: OpenCommand) {
        let remaining = min(max(0, command.deadline.subtractingSaturated(nowMs())), CommandRequestParser.maxTimeoutMs)
        let (id, device, opening) = (command.id.text, command.device, command.opening)
        let timer = timerLoop.scheduleTask(in: .milliseconds(remaining)) { [self] in
            guard let command = open.take(id, device: device, opening: opening) else { return }
            finish(command, with: CommandResponse(
                id: command.id.json, status: .timeout, data: nil,
                error: errorObject(.timeout, "no answer from \(command.device) within \(command.timeoutMs) ms"), ts: nowMs()
            ))
        }
        // Taken meanwhile (answered, or its connection ended): nothing is left to time out.
        if !open.keep(timer, for: command) { timer.cancel() }
    }

    /// Hands a newly connected device the commands queued for it, oldest first, clearing each.
    ///
    /// A request may have been queued by another gateway and delivered here too: its shared copy went to that
    /// gateway while the device was nowhere, and this gateway handled its own copy (the holder's) only after the
    /// device had connected here. Such a command, open here or answered lately (`CommandBook.hasDelivered`), is only
    /// cleared: one delivery, one final response (a second delivery answered `rejected`, "already open", or reached
    /// the device again).
    func deliverQueued(to session: DeviceSession) {
        for command in pending.takeAll(device: session.device) {
            clearPending(device: session.device, id: command.id.text)
            if open.hasDelivered(command) { continue }
            deliver(command.id, name: command.name, params: command.params,
                    timeoutMs: command.timeoutMs, replyTo: command.replyTo, to: session)
        }
    }

    /// After `ttl_ms` a queued command that was not delivered gets `expired`: the one expiry timer is armed for its
    /// `expires_at` unless it is armed for earlier already.
    private func armExpiry(at expiresAt: Int64) {
        let now = nowMs()
        // A retained command may carry any `expires_at`: the wait is bounded by the longest TTL plus the grace.
        let due = min(max(expiresAt, now), now.addingSaturated(CommandRequestParser.maxTTLMs + PendingCommand.expiryGraceMs))
        expiryTimer.withLock { armed in
            if let armed, armed.dueMs <= due { return }
            armed?.task.cancel()
            armed = (due, timerLoop.scheduleTask(in: .milliseconds(due - now)) { [weak self] in self?.expiryFell() })
        }
    }

    /// The expiry timer fired: every queued command whose TTL ended is answered (`sweepExpired`), and the timer is
    /// armed for the next `expires_at` still to come (one moved on by a wall clock set back included). One whose
    /// expiry another gateway answers waits for it, or for `sweepExpired` when that gateway goes offline.
    private func expiryFell() {
        expiryTimer.withLock { $0 = nil }
        // One clock reading for both: a command due between two readings would be neither answered nor waited for.
        let now = nowMs()
        sweepExpired(at: now)
        if let next = pending.all.lazy.map(\.expiresAt).filter({ $0 > now }).min() { armExpiry(at: next) }
    }

    /// Answers `expired` for a queued command, if this gateway is the one to answer and nobody took it.
    private func expire(_ command: PendingCommand) {
        guard answersExpiry(of: command), let expired = pending.take(device: command.device, id: command.id.text) else { return }
        clearPending(device: command.device, id: command.id.text)
        respond(device: command.device, command: command.name, id: expired.id.json, status: .expired,
                error: (.expired, "\(command.device) did not connect within the TTL"), replyTo: expired.replyTo)
    }

    /// Clears a retained `pending/<id>`. While the broker is unreachable the clear may not get there; the
    /// queue remembers the command as taken and clears it again when the broker sends it on resubscription.
    private func clearPending(device: String, id: String) {
        link.publish(OutboundMessage(topic: topics.pending(device, id), payload: [], retain: true), .bestEffort(.atLeastOnce))
    }

    /// The gateway that queued a command answers its expiry (also after it restarted); while that gateway is
    /// offline, the online gateway with the smallest id does. Only while the mirrors are in step with the
    /// broker: a gateway cut off from it cannot know whether another one answered (or delivered) meanwhile;
    /// `sweepExpired` catches up when it is back.
    private func answersExpiry(of command: PendingCommand) -> Bool {
        guard readiness.isBrokerReady else { return false }
        if command.gateway == gatewayID { return true }
        let online = directory.onlineGateways
        return !online.contains(command.gateway) && online.union([gatewayID]).min() == gatewayID
    }

    /// Publishes the final response of a delivered command.
    private func finish(_ command: OpenCommand, with response: CommandResponse, source: (any PublishSource)? = nil,
                        reopensWhenRefused: Bool = false, completion: PublishCompletion? = nil) {
        metrics.commandFinished(response.status, latencyMs: nowMs() - command.sentAt)
        publishResponse(response, device: command.device, command: command.name, replyTo: command.replyTo, source: source,
                        reopensWhenRefused: reopensWhenRefused, completion: completion)
    }

    /// Publishes a gateway-made response (rejected, offline, queued, expired).
    private func respond(device: String, command: String, id: JSONValue, status: CommandStatus,
                 error: (CommandErrorCode, String)?, replyTo: ReplyTo?) {
        if status != .queued { metrics.commandFinished(status, latencyMs: nil) }
        let response = CommandResponse(id: id, status: status, data: nil, error: error.map { errorObject($0.0, $0.1) }, ts: nowMs())
        publishResponse(response, device: device, command: command, replyTo: replyTo)
    }

    /// Publishes `response` to the command's response topic and to the request's Response Topic. A device's answer
    /// (`reopensWhenRefused`) goes there only once the first publish is safe: refused, its command opens again, and
    /// the device's resend, or the command's deadline, gives the one answer there. Any other response is the last
    /// there will be, and both go at once.
    private func publishResponse(_ response: CommandResponse, device: String, command: String, replyTo: ReplyTo?,
                                 source: (any PublishSource)? = nil, reopensWhenRefused: Bool = false, completion: PublishCompletion? = nil) {
        let payload = response.encoded()
        let delivery = Durability.mustBeSafe(device: device, source: source)
        let message = OutboundMessage(topic: topics.response(device, command), payload: payload)
        guard let replyTo else { return link.publish(message, delivery, completion: completion) }
        let copy = OutboundMessage(topic: replyTo.topic, payload: payload, properties: MQTTProperties(correlationData: replyTo.correlationData))
        guard reopensWhenRefused else {
            link.publish(message, delivery, completion: completion)
            return link.publish(copy, delivery)
        }
        link.publish(message, delivery) { [link] outcome in
            if outcome == .safe { link.publish(copy, delivery) }
            completion?(outcome)
        }
    }

    private func errorObject(_ code: CommandErrorCode, _ message: String) -> JSONObject {
        JSONObject([("code", .string(code.rawValue)), ("message", .string(message))])
    }
}
