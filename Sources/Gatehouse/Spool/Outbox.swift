import Dispatch
import GatehouseProtocol
import Logging
import Mosquitto
import Synchronization

/// Where every QoS 1 message from a device goes: straight to the broker while it is connected and its
/// in-flight window has room, into the spool otherwise. Once anything is spooled, everything after it is
/// spooled too until the replay has caught up, so each device's messages reach the broker in the order
/// they arrived. A message is safe (and the device acked) on the broker's PUBACK or once durably spooled.
final class Outbox: Sendable {
    enum Outcome: Sendable {
        case safe
        case refused(NackCode, String)
    }

    typealias Completion = @Sendable (Outcome) -> Void

    let spool: Spool
    private let broker: MosquittoClient
    /// QoS 1 publishes (live and replayed) allowed to wait for a PUBACK at once: `mqtt.max_inflight`.
    private let window: Int
    private let logger: Logger
    /// Replay runs here, one pass at a time.
    private let replayQueue = DispatchQueue(label: "gatehouse.replay")
    private let state: Mutex<State>

    private struct State {
        var spooling: Bool
        var inFlight = 0
        /// Live messages waiting for their PUBACK and not copied to the spool yet, by device, oldest first.
        var direct: [String: [(id: UInt64, entry: SpoolEntry)]] = [:]
        var nextID: UInt64 = 0
        var replayScheduled = false
        var stopped = false
    }

    init(broker: MosquittoClient, spool: Spool, window: Int, logger: Logger) {
        self.broker = broker
        self.spool = spool
        self.window = window
        self.logger = logger
        self.state = Mutex(State(spooling: !spool.isEmpty))
        spool.onDurable { [weak self] in self?.scheduleReplay() }
        keepReplaying()
    }

    /// A pass every second as well, in case a pass ended early (a segment dropped under the reader, a read error).
    private func keepReplaying() {
        replayQueue.asyncAfter(deadline: .now() + .seconds(1)) { [weak self] in
            guard let self, !self.state.withLock({ $0.stopped }) else { return }
            self.scheduleReplay()
            self.keepReplaying()
        }
    }

    /// Takes one QoS 1 message of `device`; `completion` says when it is safe, or why it was refused.
    func send(_ entry: SpoolEntry, device: String, completion: Completion?) {
        let connected = broker.isConnected
        let decision = state.withLock { state -> Result<UInt64?, Spool.AppendError> in
            if !state.spooling, connected, state.inFlight < window {
                let id = state.nextID
                state.nextID += 1
                state.inFlight += 1
                state.direct[device, default: []].append((id, entry))
                return .success(id)
            }
            // Appended under this lock so the replay cannot declare itself caught up in between.
            state.spooling = true
            do throws(Spool.AppendError) {
                // The device's messages still waiting for a PUBACK are copied in first: should the gateway stop
                // before they are confirmed, the spool still holds them ahead of this one (duplicates, not reordering).
                for earlier in state.direct.removeValue(forKey: device) ?? [] { try spool.append(earlier.entry) { _ in } }
                try spool.append(entry) { error in completion?(error.map(Self.outcome) ?? .safe) }
                return .success(nil)
            } catch {
                return .failure(error)
            }
        }
        switch decision {
        case .success(let id?):
            publishLive(entry, id: id, device: device, completion: completion)
        case .success(nil):
            break
        case .failure(let error):
            completion?(Self.outcome(error))
        }
    }

    private func publishLive(_ entry: SpoolEntry, id: UInt64, device: String, completion: Completion?) {
        publish(entry) { error in
            self.state.withLock { state in
                state.inFlight -= 1
                if let index = state.direct[device]?.firstIndex(where: { $0.id == id }) {
                    state.direct[device]!.remove(at: index)
                    if state.direct[device]!.isEmpty { state.direct[device] = nil }
                }
            }
            completion?(error.map(Self.outcome) ?? .safe)
            self.scheduleReplay()
        }
    }

    private func publish(_ entry: SpoolEntry, completion: @escaping @Sendable (MosquittoError?) -> Void) {
        do {
            try broker.publish(
                topic: entry.topic, payload: entry.payload, qos: .atLeastOnce, retain: entry.retain,
                properties: MQTTProperties(correlationData: entry.correlationData), completion: completion)
        } catch let error as MosquittoError {
            completion(error)
        } catch {
            completion(MosquittoError(code: .other, message: "\(error)"))
        }
    }

    static func outcome(_ error: MosquittoError) -> Outcome {
        error.code == .publishRejected
            ? .refused(.brokerRejected, error.message) : .refused(.brokerUnavailable, error.message)
    }

    private static func outcome(_ error: Spool.AppendError) -> Outcome {
        switch error {
        case .full: .refused(.spoolFull, "the gateway's spool is full; retry later")
        case .io(let reason): .refused(.brokerUnavailable, "the broker is unavailable and the spool cannot be written: \(reason)")
        }
    }

    // MARK: Replay

    /// Starts a replay pass unless one is queued already; called when the broker connects, after each
    /// group commit and after each PUBACK.
    func scheduleReplay() {
        let start = state.withLock { state in
            guard state.spooling, !state.replayScheduled, !state.stopped else { return false }
            state.replayScheduled = true
            return true
        }
        if start { replayQueue.async { self.replay() } }
    }

    /// Hands spooled entries to the broker, oldest first, as long as the in-flight window has room; the
    /// window is what paces the replay. Each entry leaves the spool on its PUBACK. When the reader has
    /// caught up with the writer, live messages go straight to the broker again.
    private func replay() {
        state.withLock { $0.replayScheduled = false }
        while true {
            let connected = broker.isConnected
            let room = state.withLock { state in state.stopped || !connected ? 0 : window - state.inFlight }
            guard room > 0 else { return }
            let batch = spool.read(limit: min(room, 512))
            if batch.isEmpty {
                // Back to direct only with half the window free: under sustained overload the gateway stays
                // on the spool instead of flipping (each flip copies in-flight messages, i.e. duplicates).
                state.withLock { state in
                    if spool.isCaughtUp, state.inFlight <= window / 2 { state.spooling = false }
                }
                return
            }
            state.withLock { $0.inFlight += batch.count }
            let now = nowMs()
            for (ticket, entry) in batch {
                if spool.isExpired(entry.receivedAt, now: now) {
                    spool.acknowledge(ticket, expired: true)
                    state.withLock { $0.inFlight -= 1 }
                    continue
                }
                replayOne(entry, ticket: ticket)
            }
        }
    }

    /// Publishes one spooled entry; it leaves the spool on its PUBACK, or when the broker refuses it for
    /// good. A refusal that may pass (quota exceeded, unspecified error) is retried a second later.
    private func replayOne(_ entry: SpoolEntry, ticket: Spool.Ticket) {
        publish(entry) { error in
            // Stopped client: the entry stays in the spool for the next run.
            if error?.code == .closed {
                self.state.withLock { $0.inFlight -= 1 }
                return
            }
            if let error, !Self.isPermanent(error) {
                self.logger.warning("the broker refused a spooled message for now; retrying", metadata: [
                    "topic": "\(entry.topic)", "error": "\(error.message)"])
                self.replayQueue.asyncAfter(deadline: .now() + .seconds(1)) { self.replayOne(entry, ticket: ticket) }
                return
            }
            if let error {
                self.logger.error("the broker refused a spooled message; dropping it", metadata: [
                    "topic": "\(entry.topic)", "error": "\(error.message)"])
            }
            self.state.withLock { $0.inFlight -= 1 }
            self.spool.acknowledge(ticket)
            self.scheduleReplay()
        }
    }

    /// PUBACK reasons a retry cannot change (the Mosquitto module decides which: `isPermanentRejection`).
    /// Errors before anything was queued (e.g. oversize) are permanent too.
    private static func isPermanent(_ error: MosquittoError) -> Bool {
        guard error.code == .publishRejected, error.reasonCode != nil else { return error.code != .notConnected }
        return error.isPermanentRejection
    }

    // MARK: Shutdown

    /// Stops replaying, waits up to `grace` for the PUBACKs in flight, spools the live messages still
    /// unacknowledged (their devices will also resend them) and closes the spool. Returns how many were spooled.
    func stop(grace: Duration) async -> Int {
        state.withLock { $0.stopped = true }
        let deadline = ContinuousClock.now + grace
        while state.withLock({ $0.inFlight > 0 }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let leftovers = state.withLock { state in state.direct.values.joined().sorted { $0.id < $1.id }.map(\.entry) }
        for entry in leftovers { try? spool.append(entry) { _ in } }
        spool.shutDown()
        return leftovers.count
    }
}
