@testable import Mosquitto
import Synchronization
import Testing

/// Which publishes wake the network thread: not one that waits behind a full window (libmosquitto sends it as a
/// PUBACK makes room, in that thread's own pass).
@Suite struct PublishWindowTests {
    private static func core(window: Int) -> ClientCore {
        let core = ClientCore(
            logger: quietLogger, options: MQTTClientOptions(clientID: "window"),
            messageContinuation: AsyncStream.makeStream().continuation, eventContinuation: AsyncStream.makeStream().continuation)
        core.inflightLimit.store(window, ordering: .relaxed)
        return core
    }

    /// Registers a QoS 1 publish as `MosquittoClient.send` does; returns whether it waits behind a full window.
    private static func publish(_ core: ClientCore, mid: Int32) -> Bool {
        core.beginSend()
        return core.registerPublish(mid: mid, waiter: .completion(topic: "t") { _ in }).behindFullWindow
    }

    @Test func aPublishWaitsBehindTheWindowOnlyWithAWindowAndOneMoreUnansweredBeforeIt() {
        let core = Self.core(window: 3)
        // The fourth may find room: a PUBACK read right now has freed libmosquitto's slot before its waiter is gone.
        #expect((1...6).map { Self.publish(core, mid: $0) } == [false, false, false, false, true, true])
        for mid: Int32 in 1...3 { core.handlePublishAck(mid: mid, reasonCode: 0) }
        #expect(Self.publish(core, mid: 7) == false)
        #expect(Self.publish(core, mid: 8) == true)
    }

    @Test func beforeAConnackEveryPublishWakesTheThread() {
        let core = Self.core(window: 0)
        #expect((1...10).map { Self.publish(core, mid: $0) }.allSatisfy { !$0 })
    }

    /// Between connections libmosquitto's limit is not the last connection's: every publish wakes the thread again.
    @Test func aLostConnectionForgetsItsWindow() {
        let core = Self.core(window: 3)
        #expect(Self.publish(core, mid: 1) == false)
        core.handleDisconnect(rc: MosquittoResultCode.connectionLost.rawValue)
        #expect((2...10).map { Self.publish(core, mid: $0) }.allSatisfy { !$0 })
    }
}
