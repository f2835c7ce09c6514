import Synchronization

/// An acknowledged message that has entered the send window; await ``outcome()`` for the gateway's answer.
///
/// Returned by ``DeviceClient/enqueue(_:)``, which lets a producer keep many messages in flight
/// without a task per message.
public struct PendingDelivery: Sendable {
    /// The `seq` the message carries on the wire.
    public let seq: UInt64
    let box: DeliveryBox

    /// Waits for the gateway's `ack` or `nack`.
    ///
    /// Throws ``DeviceClientError`` with code `stopped` when the client stops first, and
    /// `CancellationError` when the waiting task is cancelled (the message itself stays in flight).
    public func outcome() async throws -> SendOutcome {
        try await self.box.wait()
    }
}

/// The completion of one delivery; completed once, awaited by any number of waiters.
final class DeliveryBox: Sendable {
    private enum State {
        case pending(waiters: [UInt64: CheckedContinuation<SendOutcome, any Error>], nextWaiter: UInt64)
        case done(Result<SendOutcome, any Error>)
    }

    private let state = Mutex<State>(.pending(waiters: [:], nextWaiter: 0))

    func complete(_ result: Result<SendOutcome, any Error>) {
        let waiters = self.state.withLock { state -> [CheckedContinuation<SendOutcome, any Error>] in
            guard case .pending(let waiters, _) = state else { return [] }
            state = .done(result)
            return Array(waiters.values)
        }
        for waiter in waiters {
            waiter.resume(with: result)
        }
    }

    func wait() async throws -> SendOutcome {
        let waiterID = self.state.withLock { state -> UInt64 in
            guard case .pending(let waiters, let next) = state else { return 0 }
            state = .pending(waiters: waiters, nextWaiter: next + 1)
            return next
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<SendOutcome, any Error>) in
                let immediate = self.state.withLock { state -> Result<SendOutcome, any Error>? in
                    switch state {
                    case .done(let result):
                        return result
                    case .pending(var waiters, let next):
                        // Checked under the lock, so a cancellation handler that ran before we registered is not missed.
                        if Task.isCancelled { return .failure(CancellationError()) }
                        waiters[waiterID] = continuation
                        state = .pending(waiters: waiters, nextWaiter: next)
                        return nil
                    }
                }
                if let immediate {
                    continuation.resume(with: immediate)
                }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> CheckedContinuation<SendOutcome, any Error>? in
                guard case .pending(var waiters, let next) = state else { return nil }
                let waiter = waiters.removeValue(forKey: waiterID)
                state = .pending(waiters: waiters, nextWaiter: next)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
