import Synchronization

/// What `/readyz` reports: listening, and connected to the broker with the bridge state announced.
final class Readiness: Sendable {
    private struct State {
        var listening = false
        var brokerReady = false
        var subscribed = false
    }

    private let state = Mutex(State())

    /// True while listening, connected, subscribed and announced online.
    var isReady: Bool { state.withLock { $0.listening && $0.brokerReady } }
    /// True while connected, subscribed, announced online and in step with the broker's retained documents.
    var isBrokerReady: Bool { state.withLock { $0.brokerReady } }
    var isListening: Bool { state.withLock { $0.listening } }
    /// True once the subscriptions were made; the client keeps them across reconnects.
    var hasSubscribed: Bool { state.withLock { $0.subscribed } }

    func setListening(_ value: Bool) { state.withLock { $0.listening = value } }
    func setBrokerReady(_ value: Bool) { state.withLock { $0.brokerReady = value } }
    func setSubscribed() { state.withLock { $0.subscribed = true } }
}
