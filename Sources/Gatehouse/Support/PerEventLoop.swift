import NIOCore
import Synchronization

/// One `Value` for each event loop, made by `make` when the loop first asks (its first device connects), then kept.
final class PerEventLoop<Value: Sendable>: Sendable {
    private let byLoop = Mutex<[ObjectIdentifier: Value]>([:])
    private let make: @Sendable (any EventLoop) -> Value

    init(_ make: @escaping @Sendable (any EventLoop) -> Value) {
        self.make = make
    }

    subscript(loop: any EventLoop) -> Value {
        byLoop.withLock { byLoop in
            if let value = byLoop[ObjectIdentifier(loop)] { return value }
            let value = make(loop)
            byLoop[ObjectIdentifier(loop)] = value
            return value
        }
    }
}
