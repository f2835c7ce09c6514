import Foundation
import GatehouseProtocol
import Logging
import Mosquitto
import Synchronization
import Testing

@testable import Gatehouse

/// The outbox against an in-memory broker and a real spool: order, duplicates, backpressure, outages.
@Suite struct OutboxTests {
    /// Takes QoS 1 publishes and answers them when told to, in order (as one MQTT connection does).
    final class MemoryBroker: BrokerPublisher {
        private struct State {
            var received: [SpoolEntry] = []
            var unanswered: [@Sendable (MosquittoError?) -> Void] = []
            var failure: MosquittoError?
            var atMostOnceRoom = true
            /// QoS 0 publishes the client takes before its queue is full (nil: no limit).
            var atMostOnceRoomLeft: Int?
            var roomWanted = false
            var roomHook: (@Sendable () -> Void)?
        }
        private let state = Mutex(State())

        var hasRoomForAtMostOnce: Bool { state.withLock { $0.atMostOnceRoom } }
        func onRoomForAtMostOnce(_ hook: @escaping @Sendable () -> Void) { state.withLock { $0.roomHook = hook } }
        func wantRoomForAtMostOnce() {
            let hook = state.withLock { state -> (@Sendable () -> Void)? in
                guard state.atMostOnceRoom else {
                    state.roomWanted = true
                    return nil
                }
                return state.roomHook
            }
            hook?()
        }

        /// Whether the client's queue of unwritten QoS 0 publishes has room (for `left` more, if given); room made runs
        /// the hook if it was wanted.
        func setRoomForAtMostOnce(_ room: Bool, left: Int? = nil) {
            let hook = state.withLock { state -> (@Sendable () -> Void)? in
                state.atMostOnceRoom = room
                state.atMostOnceRoomLeft = left
                guard room, state.roomWanted else { return nil }
                state.roomWanted = false
                return state.roomHook
            }
            hook?()
        }

        func publish(
            topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool, properties: MQTTProperties,
            completion: @escaping @Sendable (MosquittoError?) -> Void
        ) throws {
            try state.withLock { (state: inout State) throws(MosquittoError) in
                if let failure = state.failure { throw failure }
                if qos == .atMostOnce, let left = state.atMostOnceRoomLeft {
                    state.atMostOnceRoomLeft = left - 1
                    if left <= 1 { state.atMostOnceRoom = false }
                }
                state.received.append(SpoolEntry(topic: topic, payload: payload, retain: retain, receivedAt: 0))
                state.unanswered.append(completion)
            }
        }

        /// Every publish from now on throws `failure` (as the client throws before it sends anything); nil: none.
        func fail(with failure: MosquittoError?) { state.withLock { $0.failure = failure } }

        /// Sends up to `count` PUBACKs, oldest first, with `refusal` as their reason when given; returns how many.
        @discardableResult
        func acknowledge(_ count: Int = .max, refusal: MosquittoError? = nil) -> Int {
            let batch = state.withLock { state in
                let batch = Array(state.unanswered.prefix(count))
                state.unanswered.removeFirst(batch.count)
                return batch
            }
            for completion in batch { completion(refusal) }
            return batch.count
        }

        /// The connection ends: everything unanswered fails with `.connectionLost`, as `MosquittoClient` fails it when
        /// the next session starts (it never sends it again).
        func loseConnection() {
            let lost = MosquittoError(code: .connectionLost, message: "connection lost")
            let batch = state.withLock { state in
                defer { state.unanswered.removeAll() }
                return state.unanswered
            }
            for completion in batch { completion(lost) }
        }

        var received: [SpoolEntry] { state.withLock { $0.received } }
        /// How many publishes await an answer, and whether one of them is to `topic`.
        func unanswered(including topic: String) -> (count: Int, includes: Bool) {
            state.withLock { ($0.unanswered.count, $0.received.suffix($0.unanswered.count).contains { $0.topic == topic }) }
        }
        /// The `seq`s (the payloads of `message(_:_:)`) of what was received, in order.
        var receivedSeqs: [Int] { received.map { Int(String(decoding: $0.payload, as: UTF8.self))! } }
        var unansweredCount: Int { state.withLock { $0.unanswered.count } }
    }

    final class Device: PublishSource {
        let paused = Mutex((now: false, times: 0))
        func setReadingPaused(_ paused: Bool, order: UInt64) {
            self.paused.withLock {
                if paused && !$0.now { $0.times += 1 }
                $0.now = paused
            }
        }
    }

    /// Counts outcomes per message.
    final class Outcomes: Sendable {
        private let state = Mutex([String: [PublishOutcome]]())
        func record(_ key: String) -> PublishCompletion { { outcome in self.state.withLock { $0[key, default: []].append(outcome) } } }
        var all: [String: [PublishOutcome]] { state.withLock { $0 } }
    }

    let dir = NSTemporaryDirectory() + "gatehouse-outbox-\(UInt64.random(in: 0...UInt64.max))"

    func makeOutbox(window: Int, writeAhead: Bool = false, keepAcknowledgedMs: Int64 = 0, spoolBytes: Int = 1 << 24) throws -> (Outbox, MemoryBroker, Spool) {
        let spool = try Spool(
            dir: dir, limits: .init(maxBytes: spoolBytes, maxAgeMs: 86_400_000, dropOldest: false, keepAcknowledgedMs: keepAcknowledgedMs),
            logger: Logger(label: "test"))
        let broker = MemoryBroker()
        return (Outbox(client: broker, spool: spool, window: window, writeAhead: writeAhead, logger: Logger(label: "test")), broker, spool)
    }

    /// Device 0's messages `seqs`, each outcome recorded under its seq.
    func send(_ seqs: Range<Int>, to outbox: Outbox, recording outcomes: Outcomes) {
        for seq in seqs { outbox.send(message(0, seq), device: "d0", source: nil, completion: outcomes.record("\(seq)")) }
    }

    /// A write-ahead outbox with the broker connected, and device 0's messages `seqs` sent to it.
    func writtenAhead(window: Int, keepAcknowledgedMs: Int64 = 0, sending seqs: Range<Int>) throws -> (Outbox, MemoryBroker, Spool, Outcomes) {
        let (outbox, broker, spool) = try makeOutbox(window: window, writeAhead: true, keepAcknowledgedMs: keepAcknowledgedMs)
        outbox.brokerConnected()
        let outcomes = Outcomes()
        send(seqs, to: outbox, recording: outcomes)
        return (outbox, broker, spool, outcomes)
    }

    /// Device 0's messages `seqs` spooled (the broker was never connected, each acked from disk), then the broker
    /// connected and the replay's first `window` entries awaiting their PUBACK.
    func replaying(window: Int, spooled seqs: Range<Int>) async throws -> (Outbox, MemoryBroker, Spool) {
        let (outbox, broker, spool) = try makeOutbox(window: window)
        let outcomes = Outcomes()
        send(seqs, to: outbox, recording: outcomes)
        await eventually { outcomes.all.count == seqs.count }
        #expect(outcomes.all.values.allSatisfy { $0 == [.safe] })
        outbox.brokerConnected()
        await eventually { broker.unansweredCount == window }
        return (outbox, broker, spool)
    }

    func message(_ device: Int, _ seq: Int) -> SpoolEntry {
        SpoolEntry(topic: "t/d\(device)/telemetry", payload: Array("\(seq)".utf8), receivedAt: nowMs())
    }

    /// A PUBACK reason that may pass.
    static let quotaExceeded = MosquittoError(code: .publishRejected, message: "quota exceeded", reasonCode: .quotaExceeded)

    /// Answers everything the broker gets until the replay has caught up and the spool is empty (bounded).
    func acknowledgeUntilCaughtUp(_ outbox: Outbox, _ broker: MemoryBroker, _ spool: Spool) async {
        await eventually {
            broker.acknowledge()
            return spool.stats().depth == 0 && !outbox.isSpooling
        }
    }

    /// Waits (bounded) until `condition` holds.
    func eventually(_ condition: () -> Bool) async {
        for _ in 0..<500 where !condition() { try? await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func steadyOverloadWithAHealthyBrokerWritesNothingAndDuplicatesNothing() async throws {
        let (outbox, broker, spool) = try makeOutbox(window: 8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        outbox.brokerConnected()
        let outcomes = Outcomes()
        let devices = (0..<5).map { _ in Device() }
        for seq in 0..<200 {
            for (index, device) in devices.enumerated() {
                outbox.send(message(index, seq), device: "d\(index)", source: device, completion: outcomes.record("\(index)/\(seq)"))
            }
            if seq % 3 == 0 { broker.acknowledge(4) }  // the broker is slower than the devices
        }
        await eventually { broker.acknowledge() == 0 && broker.unansweredCount == 0 && outbox.backlog.waiting == 0 }
        #expect(broker.received.count == 1_000)
        #expect(Set(broker.received.map { "\($0.topic)/\(String(decoding: $0.payload, as: UTF8.self))" }).count == 1_000)
        for index in 0..<5 {
            let seqs = broker.received.filter { $0.topic == "t/d\(index)/telemetry" }.map { Int(String(decoding: $0.payload, as: UTF8.self))! }
            #expect(seqs == Array(0..<200))
        }
        #expect(outcomes.all.count == 1_000 && outcomes.all.values.allSatisfy { $0 == [.safe] })
        #expect(spool.stats().depth == 0)
        #expect(devices.allSatisfy { $0.paused.withLock { $0.times > 0 && !$0.now } })
        #expect(outbox.backlog.pausedDevices == 0)
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func anOutageSpoolsAndReplaysInOrderWithoutLoss() async throws {
        let (outbox, broker, spool) = try makeOutbox(window: 4)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        outbox.brokerConnected()
        let outcomes = Outcomes()
        send(0..<10, to: outbox, recording: outcomes)
        broker.acknowledge(2)
        outbox.brokerDisconnected()
        send(10..<20, to: outbox, recording: outcomes)
        // The client fails what was in flight (2...5) when its next session starts; 10 went to the spool with copies of
        // them ahead of it, which answer them.
        broker.loseConnection()
        send(20..<30, to: outbox, recording: outcomes)
        // 0 and 1 were confirmed; the rest is acked once durable in the spool, in order.
        await eventually { outcomes.all.count == 30 }
        #expect(spool.stats().depth == 28)
        outbox.brokerConnected()
        await acknowledgeUntilCaughtUp(outbox, broker, spool)
        // Every message arrived once, in order: the client does not resend what the connection lost, the spool does.
        #expect(broker.receivedSeqs == Array(0..<6) + Array(2..<30))
        #expect(outcomes.all.count == 30 && outcomes.all.values.allSatisfy { $0 == [.safe] })
        // Back to direct publishing: nothing more is written.
        await eventually { !outbox.isSpooling }
        outbox.send(message(0, 30), device: "d0", source: nil, completion: nil)
        #expect(broker.received.count == 35)
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    /// Replayed entries in flight when the connection ends are read again from the spool on the next connection (the
    /// client does not resend them), oldest first, and nothing holds the replay.
    @Test func replayedEntriesTheConnectionLostAreReadAgainInOrder() async throws {
        let (outbox, broker, spool) = try await replaying(window: 4, spooled: 0..<10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        broker.acknowledge(1)
        await eventually { broker.unansweredCount == 4 }  // 1...4
        outbox.brokerDisconnected()
        broker.loseConnection()
        #expect(!outbox.isHoldingReplay)
        outbox.brokerConnected()
        await acknowledgeUntilCaughtUp(outbox, broker, spool)
        #expect(broker.receivedSeqs == Array(0..<5) + Array(1..<10))
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    /// A spooled message the broker closes the connection on instead of answering (mosquitto 2.0.11 may, for one its ACL
    /// denies): after a loss the replay sends one entry at a time, and a message out alone at three losses in a row is
    /// set aside. The others arrive, in order, and the replay catches up.
    @Test func aSpooledMessageTheBrokerClosesTheConnectionOnIsSetAside() async throws {
        let (outbox, broker, spool) = try makeOutbox(window: 4)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let poison = SpoolEntry(topic: "t/poison", payload: Array("99".utf8), receivedAt: nowMs())
        for seq in 0..<8 {
            outbox.send(seq == 3 ? poison : message(0, seq), device: "d0", source: nil, completion: nil)
        }
        await eventually { spool.stats().depth == 8 }
        outbox.brokerConnected()
        var lossesAlone = 0
        await eventually {
            let (count, includesPoison) = broker.unanswered(including: poison.topic)
            if includesPoison {
                if count == 1 { lossesAlone += 1 }
                outbox.brokerDisconnected()
                broker.loseConnection()
                outbox.brokerConnected()
            } else {
                // Only those checked: the replay may have sent the poison since, which must not be answered.
                broker.acknowledge(count)
            }
            return spool.stats().depth == 0 && !outbox.isSpooling
        }
        #expect(spool.stats().depth == 0 && !outbox.isSpooling)
        #expect(lossesAlone >= ReplayProbe.lossesToRefuse)
        let others = broker.received.filter { $0.topic != poison.topic }.map { Int(String(decoding: $0.payload, as: UTF8.self))! }
        #expect(Set(others) == Set([0, 1, 2, 4, 5, 6, 7]))
        let lastCopies = [0, 1, 2, 4, 5, 6, 7].map { others.lastIndex(of: $0) ?? -1 }
        #expect(lastCopies == lastCopies.sorted(), "\(others)")
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func aQoS0MessageThatSkipsTheQueuesIsAnsweredWhenThePublishReturns() async throws {
        let (outbox, broker, _) = try makeOutbox(window: 4)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outcomes = Outcomes()
        func send(_ seq: Int) -> PublishOutcome? {
            outbox.sendAtMostOnce(
                OutboundMessage(topic: "t/d0/telemetry", payload: Array("\(seq)".utf8)), device: "d0", source: nil,
                later: { outcomes.record("\(seq)") })
        }
        // The broker is away: the queues refuse it, through the completion made for them.
        #expect(send(0) == nil && outcomes.all["0"]?.count == 1 && broker.received.isEmpty)
        outbox.brokerConnected()
        #expect(send(0) == .safe && broker.receivedSeqs == [0])
        // The client throws before it sends anything (here, the connection was just lost): that is the outcome.
        broker.fail(with: MosquittoError(code: .notConnected, message: "not connected"))
        #expect(send(1) == .refused(.brokerUnavailable, "not connected"))
        broker.fail(with: MosquittoError(code: .other, message: "payload too large"))
        outbox.sendBestEffort(
            OutboundMessage(topic: "t/d0/telemetry", payload: Array("2".utf8)), qos: .atMostOnce, device: "d0", source: nil,
            completion: outcomes.record("2"))
        #expect(outcomes.all["2"] == [.refused(.brokerUnavailable, "payload too large")])
        // Behind a must-be-safe message waiting for room, it waits too, and goes after it.
        broker.fail(with: nil)
        self.send(3..<8, to: outbox, recording: outcomes)  // four in flight, one waiting
        #expect(send(8) == nil && outcomes.all["8"] == nil)
        #expect(broker.receivedSeqs == [0, 3, 4, 5, 6])
        // Message 0's answer and two PUBACKs: 7 goes, and 8 once fewer than the window's four await a PUBACK.
        broker.acknowledge(3)
        #expect(broker.receivedSeqs == [0, 3, 4, 5, 6, 7, 8])
        #expect(outcomes.all["8"] == nil)
        broker.acknowledge()  // the client's answer to a queued QoS 0 publish (at once, with a real one)
        #expect(outcomes.all["8"] == [.safe])
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func qos0MessagesWaitWhileTheClientsQueueIsFullAndPauseTheirDevice() async throws {
        let (outbox, broker, _) = try makeOutbox(window: 4)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        outbox.brokerConnected()
        let device = Device()
        let outcomes = Outcomes()
        func send(_ seq: Int) {
            outbox.sendBestEffort(
                OutboundMessage(topic: "t/d0/telemetry", payload: Array("\(seq)".utf8)), qos: .atMostOnce, device: "d0",
                source: device, completion: outcomes.record("\(seq)"))
        }
        send(0)
        #expect(outcomes.all["0"] == [.safe] && broker.receivedSeqs == [0])
        // The broker takes them slower than they come: the next ones wait, and the device is paused at the high-water
        // mark (the window, 4).
        broker.setRoomForAtMostOnce(false)
        for seq in 1...5 { send(seq) }
        #expect(broker.receivedSeqs == [0] && outcomes.all.count == 1)
        #expect(device.paused.withLock { $0.now } && outbox.backlog.waiting == 5)
        // Room again: they go in order, answered as the client answers (here, when the memory broker does), and the
        // device reads again.
        broker.setRoomForAtMostOnce(true)
        #expect(broker.receivedSeqs == Array(0...5))
        #expect(!device.paused.withLock { $0.now } && outbox.backlog.waiting == 0)
        broker.acknowledge()
        #expect(outcomes.all.count == 6 && outcomes.all.values.allSatisfy { $0 == [.safe] })
        // Messages that waited go as one batch, without asking the client; if they fill its queue, the next waits.
        broker.setRoomForAtMostOnce(false)
        for seq in 6...8 { send(seq) }
        broker.setRoomForAtMostOnce(true, left: 2)
        #expect(broker.receivedSeqs == Array(0...8) && !broker.hasRoomForAtMostOnce)
        send(9)
        #expect(broker.receivedSeqs == Array(0...8) && outbox.backlog.waiting == 1)
        broker.setRoomForAtMostOnce(true)
        #expect(broker.receivedSeqs == Array(0...9))
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func aReplayedMessageRefusedForNowGoesAgainWithEverythingAfterItInOrder() async throws {
        let (outbox, broker, spool) = try await replaying(window: 4, spooled: 0..<10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        broker.acknowledge(1)
        broker.acknowledge(1, refusal: Self.quotaExceeded)  // entry 1, for a reason that may pass
        broker.acknowledge()  // entries 2 and 3 (and 4, had the replay gone on)
        #expect(broker.received.count == 4 || broker.received.count == 5)
        // A second later the replay starts again from entry 1, the oldest unconfirmed one.
        await acknowledgeUntilCaughtUp(outbox, broker, spool)
        #expect(spool.stats().depth == 0 && !outbox.isSpooling)
        let seqs = broker.receivedSeqs
        #expect(Set(seqs) == Set(0..<10))
        // Each entry's last copy reaches the broker in order: entry 1 does not come after 2 and 3 for good.
        let lastCopies = (0..<10).map { seq in seqs.lastIndex(of: seq) ?? -1 }
        #expect(lastCopies == lastCopies.sorted(), "\(seqs)")
        #expect(Array(seqs.drop { $0 != 1 }.dropFirst().drop { $0 != 1 }) == Array(1..<10), "\(seqs)")
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func aMessageWrittenAheadAndRefusedForNowGoesAgainFromTheSpoolInOrder() async throws {
        let (outbox, broker, spool, outcomes) = try writtenAhead(window: 4, sending: 0..<10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Every one acked once durable in the spool; four in flight.
        await eventually { broker.unansweredCount == 4 && outcomes.all.count == 10 }
        #expect(outcomes.all.values.allSatisfy { $0 == [.safe] })
        broker.acknowledge(1)
        broker.acknowledge(1, refusal: Self.quotaExceeded)  // entry 1, acked to its device already, for a reason that may pass
        #expect(outbox.isSpooling)
        // A second later the spool is read again from the oldest entry it still has: entry 1 goes again.
        await acknowledgeUntilCaughtUp(outbox, broker, spool)
        let seqs = broker.receivedSeqs
        #expect(Set(seqs) == Set(0..<10))
        #expect(seqs.filter { $0 == 1 }.count == 2, "\(seqs)")
        let lastCopies = (0..<10).map { seq in seqs.lastIndex(of: seq) ?? -1 }
        #expect(lastCopies == lastCopies.sorted(), "\(seqs)")
        #expect(outcomes.all.count == 10 && outcomes.all.values.allSatisfy { $0 == [.safe] })
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    /// With write-ahead (the embedded broker, which saves what it acknowledged only at its next autosave) a message the
    /// full spool cannot take is refused `spool_full`, not published to be answered by its PUBACK alone: a broker killed
    /// before its autosave would lose it acked, or the spool's replay would put it behind the device's later ones.
    @Test func aMessageTheFullSpoolCannotWriteAheadIsRefusedNotPublished() async throws {
        let (outbox, broker, spool) = try makeOutbox(window: 100, writeAhead: true, keepAcknowledgedMs: 600_000, spoolBytes: 4096)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        outbox.brokerConnected()
        let outcomes = Outcomes()
        send(0..<200, to: outbox, recording: outcomes)
        await eventually { outcomes.all.count == 200 }
        let refused = outcomes.all.filter { $0.value.first.map { if case .refused(.spoolFull, _) = $0 { true } else { false } } ?? false }
        #expect(!refused.isEmpty, "the spool should have filled up: \(spool.stats())")
        #expect(outcomes.all.values.allSatisfy { $0.count == 1 })
        let published = Set(broker.receivedSeqs)
        for key in refused.keys { #expect(!published.contains(Int(key)!), "\(key) was refused and published") }
        // The gateway's own message (no device to refuse it to: a document, an answer) goes the PUBACK's way instead.
        outbox.send(message(0, 1000), device: "", source: nil, completion: nil)
        await eventually {
            broker.acknowledge()  // the window was full
            return broker.receivedSeqs.contains(1000)
        }
        #expect(broker.receivedSeqs.contains(1000))
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func aWrittenAheadMessageRefusedForNowAfterARewindIsLeftToTheReplay() async throws {
        let (outbox, broker, spool, outcomes) = try writtenAhead(window: 8, sending: 0..<4)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        await eventually { broker.unansweredCount == 4 && outcomes.all.count == 4 }
        // The broker is lost before it answered: the spool is rewound (the four tickets are void). A refusal after
        // that (`MosquittoClient` answers on the connection or not at all, but the outbox does not count on it)
        // holds nothing: the replay reads the entry anyway.
        outbox.brokerDisconnected()
        broker.acknowledge(1, refusal: Self.quotaExceeded)
        #expect(!outbox.isHoldingReplay)
        broker.loseConnection()
        outbox.brokerConnected()
        await acknowledgeUntilCaughtUp(outbox, broker, spool)
        let seqs = broker.receivedSeqs
        #expect(seqs == Array(0..<4) + Array(0..<4))
        #expect(outcomes.all.count == 4 && outcomes.all.values.allSatisfy { $0 == [.safe] })
        _ = await outbox.stop(grace: .milliseconds(10))
    }

    @Test func writeAheadKeepsWhatTheBrokerAcknowledgedAndPublishesItAgainAfterTheBrokerIsLost() async throws {
        let (outbox, broker, spool, outcomes) = try writtenAhead(window: 8, keepAcknowledgedMs: 60_000, sending: 0..<20)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        await eventually { broker.acknowledge(); return broker.received.count == 20 && outcomes.all.count == 20 }
        // Safe once durable in the spool, which keeps them after their PUBACK (the broker's unsaved window).
        #expect(outcomes.all.values.allSatisfy { $0 == [.safe] })
        #expect(spool.stats().depth == 20 && !outbox.isSpooling)
        // The broker dies before saving: reconnected, the gateway publishes everything kept again, then new messages.
        outbox.brokerDisconnected()
        outbox.send(message(0, 20), device: "d0", source: nil, completion: outcomes.record("20"))
        outbox.brokerConnected()
        await eventually { broker.acknowledge(); return broker.received.count == 41 && !outbox.isSpooling }
        let seqs = broker.receivedSeqs
        #expect(seqs == Array(0..<20) + Array(0...20))
        #expect(outcomes.all.count == 21 && outcomes.all.values.allSatisfy { $0 == [.safe] })
        _ = await outbox.stop(grace: .milliseconds(10))
    }
}
