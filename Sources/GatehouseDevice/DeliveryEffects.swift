/// Continuations to resume once the client's lock is released.
///
/// ``DeliveryState`` decides under the lock what happens; resuming happens afterwards, so no waiter
/// ever runs (or is scheduled) while the lock is held.
struct DeliveryEffects: Sendable {
    var admitted: [(CheckedContinuation<PendingDelivery, any Error>, Result<PendingDelivery, any Error>)] = []
    var completed: [(DeliveryBox, Result<SendOutcome, any Error>)] = []
    var written: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = []
    var writer: (CheckedContinuation<OutboundWrite?, Never>, OutboundWrite?)? = nil
    var idle: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)] = []

    func perform() {
        for (continuation, result) in self.admitted {
            continuation.resume(with: result)
        }
        if let (continuation, write) = self.writer {
            continuation.resume(returning: write)
        }
        for (box, result) in self.completed {
            box.complete(result)
        }
        for (continuation, result) in self.written {
            continuation.resume(with: result)
        }
        for (continuation, result) in self.idle {
            continuation.resume(with: result)
        }
    }
}

/// One WebSocket message for a connection's writer.
struct OutboundWrite: Sendable {
    enum Frame: Sendable {
        case text(String)
        case binary([UInt8])
    }

    var frame: Frame
    /// Resumed after the write, for fire-and-forget and media messages whose sender waits for it.
    var completion: CheckedContinuation<Void, any Error>?
}
