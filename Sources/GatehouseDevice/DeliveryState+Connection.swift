import GatehouseProtocol
import NIOCore

extension DeliveryState {
    mutating func connectionStarted(id: UInt64) {
        self.connection = Connection(id: id)
    }

    /// The `welcome` arrived: the connection is ready; queue `hello`, then every unacknowledged message in `seq` order.
    mutating func welcomed(id: UInt64, welcome: DeviceWelcome) -> DeliveryEffects {
        var effects = DeliveryEffects()
        guard self.connection?.id == id else { return effects }
        self.welcome = welcome
        // Before the connection is ready, so that messages admitted into the room this frees are queued once, below.
        self.refuseOversized(limit: welcome.maxMessageBytes, into: &effects)
        self.connection?.ready = true
        self.sessions += 1
        self.stats.reconnects = max(0, self.sessions - 1)
        self.stats.connected = true
        if let hello = self.hello {
            let seq: UInt64
            if let pending = self.helloSeq, self.inFlight[pending] != nil {
                seq = pending
            } else {
                seq = self.nextSeq
                self.nextSeq += 1
                let text = DeviceMessage(seq: seq, body: .hello(hello)).encodedString()
                self.inFlight[seq] = InFlight(text: text, box: DeliveryBox(), writes: 0)
                self.helloSeq = seq
            }
            self.route(.sequenced(seq), into: &effects)
        }
        for seq in self.inFlight.keys.sorted() where seq != self.helloSeq {
            self.route(.sequenced(seq), into: &effects)
        }
        return effects
    }

    /// The connection ended: its writer stops, fire-and-forget messages not yet written fail, and
    /// acknowledged ones stay in the window for the next connection.
    mutating func connectionEnded(id: UInt64) -> DeliveryEffects {
        var effects = DeliveryEffects()
        guard let connection = self.connection, connection.id == id else { return effects }
        self.connection = nil
        self.welcome = nil
        self.stats.connected = false
        if let writer = connection.writer {
            effects.writer = (writer, nil)
        }
        let lost = DeviceClientError(code: .notConnected, message: "the connection to the gateway ended before the message was written")
        for item in connection.queue {
            if case .oneShot(let oneShot) = item {
                effects.written.append((oneShot.continuation, .failure(lost)))
            }
        }
        return effects
    }

    /// Hands `item` to the connection's waiting writer, or queues it; without a ready connection,
    /// acknowledged messages simply stay in the window.
    mutating func route(_ item: QueueItem, into effects: inout DeliveryEffects) {
        guard var connection = self.connection, connection.ready else {
            if case .oneShot(let oneShot) = item {
                effects.written.append((oneShot.continuation, .failure(DeviceClientError(code: .notConnected, message: "not connected to the gateway"))))
            }
            return
        }
        self.connection = nil  // avoid a copy-on-write of the queue while we mutate it
        connection.queue.append(item)
        if let writer = connection.writer, let write = self.popWrite(from: &connection.queue) {
            connection.writer = nil
            effects.writer = (writer, write)
        }
        self.connection = connection
    }

    /// The writer of connection `id` wants its next message.
    mutating func nextWrite(id: UInt64, continuation: CheckedContinuation<OutboundWrite?, Never>, isCancelled: Bool) -> DeliveryEffects {
        var effects = DeliveryEffects()
        guard var connection = self.connection, connection.id == id, !isCancelled else {
            effects.writer = (continuation, nil)
            return effects
        }
        self.connection = nil
        if let write = self.popWrite(from: &connection.queue) {
            effects.writer = (continuation, write)
        } else {
            connection.writer = continuation
        }
        self.connection = connection
        return effects
    }

    mutating func cancelWriter(id: UInt64) -> DeliveryEffects {
        var effects = DeliveryEffects()
        guard self.connection?.id == id, let writer = self.connection?.writer else { return effects }
        self.connection?.writer = nil
        effects.writer = (writer, nil)
        return effects
    }

    private mutating func popWrite(from queue: inout CircularBuffer<QueueItem>) -> OutboundWrite? {
        while let item = queue.popFirst() {
            switch item {
            case .sequenced(let seq):
                // Answered meanwhile (e.g. queued twice around a reconnect): nothing to write.
                guard var entry = self.inFlight[seq] else { continue }
                if entry.writes == 0 {
                    self.stats.sent += 1
                } else {
                    self.stats.resent += 1
                }
                entry.writes += 1
                self.inFlight[seq] = entry
                return OutboundWrite(frame: .text(entry.text), completion: nil)
            case .oneShot(let oneShot):
                self.stats.sent += 1
                return OutboundWrite(frame: oneShot.frame, completion: oneShot.continuation)
            }
        }
        return nil
    }
}
