import GatehouseProtocol
import NIOCore

/// Everything a ``DeviceClient`` shares between senders, its reader and its writer, kept under one lock.
///
/// The window holds acknowledged messages from the moment they get a `seq` until their `ack`/`nack`,
/// across connections: after a reconnect, whatever is still in it is written again, in `seq` order.
struct DeliveryState {
    enum Lifecycle {
        case idle
        case running
        case stopped
    }

    struct InFlight {
        let text: String
        let box: DeliveryBox
        var writes: Int
    }

    struct WaitingSend {
        let id: UInt64
        let body: DeviceMessageBody
        let continuation: CheckedContinuation<PendingDelivery, any Error>
    }

    struct OneShot {
        let id: UInt64
        let frame: OutboundWrite.Frame
        let continuation: CheckedContinuation<Void, any Error>
    }

    enum QueueItem {
        case sequenced(UInt64)
        case oneShot(OneShot)
    }

    /// The current connection. It only carries messages once `ready` (its `welcome` arrived).
    struct Connection {
        let id: UInt64
        var ready = false
        var queue = CircularBuffer<QueueItem>()
        var writer: CheckedContinuation<OutboundWrite?, Never>?
    }

    let window: Int
    let hello: DeviceHello?
    var lifecycle = Lifecycle.idle
    var nextSeq: UInt64 = 1
    var nextID: UInt64 = 1
    var inFlight: [UInt64: InFlight] = [:]
    var helloSeq: UInt64?
    var waiting = CircularBuffer<WaitingSend>()
    var idleWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
    var connection: Connection?
    var welcome: DeviceWelcome?
    var sessions = 0
    var stats = DeviceClientStats()

    init(window: Int, hello: DeviceHello?) {
        self.window = max(1, window)
        self.hello = hello
    }

    mutating func makeID() -> UInt64 {
        defer { self.nextID += 1 }
        return self.nextID
    }

    static var stoppedError: DeviceClientError {
        DeviceClientError(code: .stopped, message: "the device client has stopped; create a new one and run it")
    }

    // MARK: Acknowledged messages

    mutating func enqueue(
        id: UInt64,
        body: DeviceMessageBody,
        continuation: CheckedContinuation<PendingDelivery, any Error>,
        isCancelled: Bool
    ) -> DeliveryEffects {
        var effects = DeliveryEffects()
        if self.lifecycle == .stopped {
            effects.admitted.append((continuation, .failure(Self.stoppedError)))
        } else if isCancelled {
            effects.admitted.append((continuation, .failure(CancellationError())))
        } else {
            self.waiting.append(WaitingSend(id: id, body: body, continuation: continuation))
            self.admit(into: &effects)
        }
        return effects
    }

    mutating func cancelWaiting(id: UInt64) -> DeliveryEffects {
        var effects = DeliveryEffects()
        if let index = self.waiting.firstIndex(where: { $0.id == id }) {
            let send = self.waiting.remove(at: index)
            effects.admitted.append((send.continuation, .failure(CancellationError())))
        }
        return effects
    }

    /// Moves waiting sends into the window while it has room, in arrival order.
    private mutating func admit(into effects: inout DeliveryEffects) {
        while self.inFlight.count < self.window, let send = self.waiting.popFirst() {
            let seq = self.takeSeq()
            let text = DeviceMessage(seq: seq, body: send.body).encodedString()
            if let limit = self.welcome?.maxMessageBytes, text.utf8.count > limit {
                effects.admitted.append((send.continuation, .failure(Self.tooBig(text.utf8.count, limit: limit))))
                continue
            }
            let box = DeliveryBox()
            self.inFlight[seq] = InFlight(text: text, box: box, writes: 0)
            self.route(.sequenced(seq), into: &effects)
            effects.admitted.append((send.continuation, .success(PendingDelivery(seq: seq, box: box))))
        }
    }

    /// Fails acknowledged messages, admitted while the limit was unknown (disconnected), that are longer than the
    /// gateway's `max_message_bytes`: written, one would make the gateway close the connection (1009), and being
    /// resent after every reconnect it would do so for ever, holding up everything behind it. The `hello` is kept.
    mutating func refuseOversized(limit: Int, into effects: inout DeliveryEffects) {
        let oversized = self.inFlight.filter { $0.key != self.helloSeq && $0.value.text.utf8.count > limit }
        guard !oversized.isEmpty else { return }
        for (seq, entry) in oversized {
            self.inFlight[seq] = nil
            effects.completed.append((entry.box, .failure(Self.tooBig(entry.text.utf8.count, limit: limit))))
        }
        self.admit(into: &effects)
        self.releaseIdleWaiters(into: &effects)
    }

    private static func tooBig(_ bytes: Int, limit: Int) -> DeviceClientError {
        DeviceClientError(
            code: .messageTooBig,
            message: "message of \(bytes) bytes exceeds the gateway's max_message_bytes \(limit); send less data per message"
        )
    }

    private mutating func takeSeq() -> UInt64 {
        defer { self.nextSeq += 1 }
        return self.nextSeq
    }

    mutating func answered(seq: UInt64, outcome: SendOutcome) -> DeliveryEffects {
        var effects = DeliveryEffects()
        guard let entry = self.inFlight.removeValue(forKey: seq) else { return effects }
        if case .nacked = outcome {
            self.stats.nacked += 1
        } else {
            self.stats.acked += 1
        }
        effects.completed.append((entry.box, .success(outcome)))
        self.admit(into: &effects)
        self.releaseIdleWaiters(into: &effects)
        return effects
    }

    // MARK: Fire-and-forget and media

    mutating func sendOneShot(
        id: UInt64,
        frame: OutboundWrite.Frame,
        continuation: CheckedContinuation<Void, any Error>,
        isCancelled: Bool
    ) -> DeliveryEffects {
        var effects = DeliveryEffects()
        if self.lifecycle == .stopped {
            effects.written.append((continuation, .failure(Self.stoppedError)))
        } else if isCancelled {
            effects.written.append((continuation, .failure(CancellationError())))
        } else if self.connection?.ready != true {
            let error = DeviceClientError(
                code: .notConnected,
                message: "not connected to the gateway; send it acknowledged to have it wait for the connection"
            )
            effects.written.append((continuation, .failure(error)))
        } else {
            self.route(.oneShot(OneShot(id: id, frame: frame, continuation: continuation)), into: &effects)
        }
        return effects
    }

    // MARK: Idle

    mutating func waitIdle(id: UInt64, continuation: CheckedContinuation<Void, any Error>, isCancelled: Bool) -> DeliveryEffects {
        var effects = DeliveryEffects()
        if self.lifecycle == .stopped {
            effects.idle.append((continuation, .failure(Self.stoppedError)))
        } else if isCancelled {
            effects.idle.append((continuation, .failure(CancellationError())))
        } else if self.inFlight.isEmpty, self.waiting.isEmpty {
            effects.idle.append((continuation, .success(())))
        } else {
            self.idleWaiters[id] = continuation
        }
        return effects
    }

    mutating func cancelIdle(id: UInt64) -> DeliveryEffects {
        var effects = DeliveryEffects()
        if let continuation = self.idleWaiters.removeValue(forKey: id) {
            effects.idle.append((continuation, .failure(CancellationError())))
        }
        return effects
    }

    private mutating func releaseIdleWaiters(into effects: inout DeliveryEffects) {
        guard self.inFlight.isEmpty, self.waiting.isEmpty, !self.idleWaiters.isEmpty else { return }
        for continuation in self.idleWaiters.values {
            effects.idle.append((continuation, .success(())))
        }
        self.idleWaiters = [:]
    }

    // MARK: Stopping

    /// Fails everything still waiting: the client will not deliver it any more.
    mutating func stop() -> DeliveryEffects {
        var effects = DeliveryEffects()
        self.lifecycle = .stopped
        if let connection = self.connection {
            effects = self.connectionEnded(id: connection.id)
        }
        for (_, entry) in self.inFlight {
            effects.completed.append((entry.box, .failure(Self.stoppedError)))
        }
        self.inFlight = [:]
        for send in self.waiting {
            effects.admitted.append((send.continuation, .failure(Self.stoppedError)))
        }
        self.waiting.removeAll()
        for continuation in self.idleWaiters.values {
            effects.idle.append((continuation, .failure(Self.stoppedError)))
        }
        self.idleWaiters = [:]
        return effects
    }
}
