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
        core.readingPackets.store(true, ordering: .relaxed)  // PUBACKs, as the network thread reads them
        for mid: Int32 in 1...3 { core.handlePublishAck(mid: mid, reasonCode: 0) }
        #expect(Self.publish(core, mid: 7) == false)
        #expect(Self.publish(core, mid: 8) == true)
    }

    /// libmosquitto reports a QoS 0 publish written through the PUBACK callback, with an id a QoS 1 publish may hold
    /// (the counter is shared and wraps): outside the network thread's reads it answers nothing.
    @Test func aPublishCallbackOutsideTheReadsAnswersNothing() {
        let core = Self.core(window: 3)
        let answers = Mutex(0)
        core.beginSend()
        _ = core.registerPublish(mid: 5, waiter: .completion(topic: "t") { _ in answers.withLock { $0 += 1 } })
        core.handlePublishAck(mid: 5, reasonCode: 0)  // a QoS 0 publish with id 5 written
        #expect(answers.withLock { $0 } == 0 && core.pubacks.answered == 0)
        core.readingPackets.store(true, ordering: .relaxed)
        core.handlePublishAck(mid: 5, reasonCode: 0)  // its PUBACK
        #expect(answers.withLock { $0 } == 1 && core.pubacks.answered == 1)
    }

    /// libmosquitto's ids wrap (QoS 0 publishes take them too): a QoS 1 publish may get the id of one still unanswered.
    /// That id's PUBACKs answer them oldest first, each once.
    @Test func publishesSharingAnIdAreAnsweredOldestFirst() {
        let core = Self.core(window: 3)
        let answers = Mutex<[String]>([])
        for name in ["older", "newer"] {
            core.beginSend()
            _ = core.registerPublish(mid: 9, waiter: .completion(topic: name) { error in
                answers.withLock { $0.append("\(name) \(error?.reasonCode.map { "\($0.rawValue)" } ?? "ok")") }
            })
        }
        #expect(core.pubacks.owed == 2)
        core.readingPackets.store(true, ordering: .relaxed)
        core.handlePublishAck(mid: 9, reasonCode: 0)
        core.handlePublishAck(mid: 9, reasonCode: 0x97)
        core.handlePublishAck(mid: 9, reasonCode: 0)  // a third answers nobody
        #expect(answers.withLock { $0 } == ["older ok", "newer 151"])
        #expect(core.pubacks.owed == 0)
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
