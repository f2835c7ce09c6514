import GatehouseProtocol
import Synchronization
import Testing

@testable import GatehouseDevice

/// Drives a ``DeliveryState`` the way ``DeviceClient`` does (decide under the lock, perform the effects after),
/// with no connection: the tests play the reader (welcome, ack, nack) and the writer (`nextWrite`).
final class DeliveryHarness: Sendable {
    let state: Mutex<DeliveryState>

    init(window: Int, hello: DeviceHello? = nil) {
        state = Mutex(DeliveryState(window: window, hello: hello))
    }

    func read<T: Sendable>(_ body: (DeliveryState) -> T) -> T {
        state.withLock { body($0) }
    }

    // MARK: Senders

    /// Starts `enqueue` in a task and waits until the state has taken it (admitted into the window or waiting).
    func enqueue(_ name: String) async throws -> Task<PendingDelivery, any Error> {
        // The task has been taken when it waits for room, got a seq, or was refused (stopped client).
        let before = read { ($0.waiting.count, $0.nextSeq) }
        let id = state.withLock { $0.makeID() }
        let task = Task<PendingDelivery, any Error> {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PendingDelivery, any Error>) in
                self.state.withLock {
                    $0.enqueue(id: id, body: Self.body(name), continuation: continuation, isCancelled: false)
                }.perform()
            }
        }
        try await settle { $0.waiting.count != before.0 || $0.nextSeq != before.1 || $0.lifecycle == .stopped }
        await Task.yield()
        return task
    }

    /// Enqueues and returns the delivery, for sends that the window admits at once.
    func admitted(_ name: String) async throws -> PendingDelivery {
        try await enqueue(name).value
    }

    static func body(_ name: String) -> DeviceMessageBody {
        .event(name: name, data: .null)
    }

    // MARK: Reader

    func connect(_ id: UInt64) {
        state.withLock { $0.connectionStarted(id: id) }
    }

    func welcome(_ id: UInt64, maxMessageBytes: Int = 65536) {
        let welcome = DeviceWelcome(device: "d1", gateway: "gw", session: Int64(id), heartbeatSeconds: 30, maxMessageBytes: maxMessageBytes)
        state.withLock { $0.welcomed(id: id, welcome: welcome) }.perform()
    }

    func end(_ id: UInt64) {
        state.withLock { $0.connectionEnded(id: id) }.perform()
    }

    func ack(_ seq: UInt64) {
        state.withLock { $0.answered(seq: seq, outcome: .acked) }.perform()
    }

    func nack(_ seq: UInt64, _ code: String, _ message: String = "refused") {
        state.withLock { $0.answered(seq: seq, outcome: .nacked(code: code, message: message)) }.perform()
    }

    // MARK: Writer

    /// The next write of connection `id` if one is ready now, else nil (never parks the writer).
    func poll(_ id: UInt64) async -> OutboundWrite? {
        await withCheckedContinuation { (continuation: CheckedContinuation<OutboundWrite?, Never>) in
            state.withLock { state in
                let effects = state.nextWrite(id: id, continuation: continuation, isCancelled: false)
                return effects.writer == nil ? state.cancelWriter(id: id) : effects
            }.perform()
        }
    }

    /// Everything connection `id` would write now, as parsed messages.
    func drain(_ id: UInt64) async throws -> [DeviceMessage] {
        var messages: [DeviceMessage] = []
        while let write = await poll(id) {
            guard case .text(let text) = write.frame else {
                Issue.record("expected a text frame")
                continue
            }
            write.completion?.resume()
            messages.append(try DeviceMessage.parse(Array(text.utf8)).get())
        }
        return messages
    }

    /// Waits (bounded) until `condition` holds for the state; the tasks that enqueue run concurrently.
    func settle(_ condition: @escaping (DeliveryState) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(2)
        while !state.withLock({ condition($0) }) {
            guard ContinuousClock.now < deadline else {
                Issue.record("the delivery state did not reach the expected condition")
                return
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

extension DeviceMessage {
    /// The event name of a message built by ``DeliveryHarness/body(_:)``, or "hello".
    var name: String {
        switch body {
        case .event(let name, _, _): name
        case .hello: "hello"
        default: "?"
        }
    }
}

/// Waits for a task's result, bounded, without failing the caller if it is still running.
func finished<T: Sendable>(_ task: Task<T, any Error>, within limit: Duration = .milliseconds(200)) async -> Result<T, any Error>? {
    let box = ResultBox<T>()
    let watcher = Task {
        let result = await task.result
        box.value.withLock { $0 = result }
    }
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if let result = box.value.withLock({ $0 }) { return result }
        try? await Task.sleep(for: .milliseconds(1))
    }
    watcher.cancel()
    return box.value.withLock { $0 }
}

private final class ResultBox<T: Sendable>: Sendable {
    let value = Mutex<Result<T, any Error>?>(nil)
}
