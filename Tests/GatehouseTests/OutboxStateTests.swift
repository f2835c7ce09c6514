import GatehouseProtocol
import Mosquitto
import Synchronization
import Testing

@testable import Gatehouse

/// The outbox's decisions without I/O: window, waiting queue, pausing, spooling and replay.
@Suite struct OutboxStateTests {
    final class Source: PublishSource {
        func setReadingPaused(_ paused: Bool, order: UInt64) {}
    }

    func entry(_ index: Int) -> SpoolEntry {
        SpoolEntry(topic: "t/d/telemetry", payload: Array("\(index)".utf8), receivedAt: 1_000)
    }

    /// What the draining thread would hand to the broker after `effects`.
    func handedOver(_ effects: OutboxState.Effects, _ state: inout OutboxState) -> [OutboxState.Message] {
        guard effects.drain else { return [] }
        return drain(&state).messages
    }

    /// Drains as the thread draining does: the messages handed over, and whether it then asked for room for QoS 0.
    func drain(_ state: inout OutboxState) -> (messages: [OutboxState.Message], wantedRoom: Bool) {
        var all: [OutboxState.Message] = []
        var batch: [OutboxState.Message] = []
        var wantedRoom = false
        var wantsRoomAfter = false
        while state.nextToPublish(into: &batch, wantsRoomAfter: &wantsRoomAfter) {
            all += batch
            batch.removeAll(keepingCapacity: true)
            wantedRoom = wantedRoom || wantsRoomAfter
        }
        return (all, wantedRoom)
    }

    /// Submits and returns what goes to the broker at once.
    func submit(_ index: Int, into state: inout OutboxState) -> [OutboxState.Message] {
        let effects = state.submit(entry(index), device: "a", source: nil, completion: nil)
        return handedOver(effects, &state)
    }

    func connected(window: Int = 2) -> OutboxState {
        var state = OutboxState(window: window, spoolIsEmpty: true)
        _ = state.brokerConnected()
        return state
    }

    @Test func publishesWhileTheWindowHasRoomThenWaitsInMemory() {
        var state = connected(window: 2)
        #expect(submit(0, into: &state).count == 1)
        #expect(submit(1, into: &state).count == 1)
        let third = state.submit(entry(2), device: "a", source: nil, completion: nil)
        #expect(!third.drain && third.spool.isEmpty)
        #expect(state.waitingCount == 1 && state.mode == .direct)
        let freed = state.published(id: 0, device: "a")
        #expect(handedOver(freed, &state).map(\.entry) == [entry(2)])
        #expect(state.waitingCount == 0 && state.inFlight == 2)
    }

    @Test func pausesTheSourceAtTheHighWaterMarkAndResumesBelowHalf() {
        var state = connected(window: 2)
        let source = Source()
        for index in 0..<3 { _ = state.submit(entry(index), device: "a", source: source, completion: nil) }
        let fourth = state.submit(entry(3), device: "a", source: source, completion: nil)
        #expect(fourth.reading.map(\.paused) == [true] && state.pausedCount == 1)
        // Paused once only, however many more arrive from the same source.
        #expect(state.submit(entry(4), device: "a", source: source, completion: nil).reading.isEmpty)
        #expect(state.waitingCount == 3)
        // Two PUBACKs move two waiting messages out; one waits (<= highWater / 2): resumed.
        #expect(state.published(id: 0, device: "a").reading.isEmpty)
        let second = state.published(id: 1, device: "a")
        #expect(second.reading.map(\.paused) == [false] && state.pausedCount == 0)
        #expect(second.reading[0].order > fourth.reading[0].order)
    }

    /// Large messages pause their source by their bytes long before their number would: a camera's waiting frames are
    /// bounded in memory, not only in count. Resumed once both are at half or below.
    @Test func pausesTheSourceAtTheHighWaterMarkInBytesAndResumesWhenBothAreAtHalf() {
        var state = OutboxState(window: 100, spoolIsEmpty: true, highWaterBytes: 3_000)
        _ = state.brokerConnected()
        let source = Source()
        let frame = { (index: Int) in SpoolEntry(topic: "t/d/media/clip", payload: [UInt8](repeating: UInt8(index), count: 1_000), receivedAt: 1_000) }
        for index in 0..<100 { _ = state.submit(frame(index), device: "a", source: source, completion: nil) }  // the window
        #expect(state.submit(frame(100), device: "a", source: source, completion: nil).reading.isEmpty)
        #expect(state.submit(frame(101), device: "a", source: source, completion: nil).reading.isEmpty)
        let third = state.submit(frame(102), device: "a", source: source, completion: nil)
        #expect(third.reading.map(\.paused) == [true] && state.waitingCount == 3)
        // 1,000 bytes wait after two PUBACKs: 1,500 is half.
        #expect(state.published(id: 0, device: "a").reading.isEmpty)
        #expect(state.published(id: 1, device: "a").reading.map(\.paused) == [false])
    }

    @Test func overloadWithAHealthyBrokerNeverSpools() {
        var state = connected(window: 4)
        var published: [UInt64] = []
        for index in 0..<1_000 {
            let effects = state.submit(entry(index), device: "d\(index % 7)", source: nil, completion: nil)
            #expect(effects.spool.isEmpty)
            published += handedOver(effects, &state).map(\.id)
            // Acknowledge the oldest in flight every other message: the window stays full.
            if index % 2 == 1, let oldest = published.first {
                published.removeFirst()
                let effects = state.published(id: oldest, device: "d\(Int(oldest) % 7)")
                #expect(effects.spool.isEmpty)
                published += handedOver(effects, &state).map(\.id)
            }
        }
        #expect(state.mode == .direct)
    }

    @Test func losingTheBrokerSpoolsWhatWaitsAfterCopiesOfTheUnconfirmed() {
        var state = connected(window: 1)
        let source = Source()
        _ = state.submit(entry(0), device: "a", source: source, completion: nil)  // in flight
        _ = state.submit(entry(1), device: "a", source: source, completion: nil)  // waits
        let paused = state.submit(entry(2), device: "a", source: source, completion: nil)
        #expect(paused.reading.map(\.paused) == [true])
        let lost = state.brokerDisconnected()
        #expect(state.mode == .spooling)
        #expect(lost.spool.map(\.entry) == [entry(0), entry(1), entry(2)])
        #expect(lost.spool.allSatisfy { $0.completion != nil })  // the copy answers entry 0 unless its PUBACK came first
        #expect(lost.reading.map(\.paused) == [false])
        // Later messages go to the spool too, without copying entry 0 again.
        #expect(state.submit(entry(3), device: "a", source: nil, completion: nil).spool.map(\.entry) == [entry(3)])
    }

    @Test func replayIsPacedByTheWindowAndEndsInDirectMode() {
        var state = OutboxState(window: 3, spoolIsEmpty: false)
        #expect(state.mode == .spooling)
        #expect(state.reserveReplay(limit: 10) == 0)  // not connected
        let connect = state.brokerConnected()
        #expect(connect.replay)
        state.replayPassStarted()
        #expect(state.reserveReplay(limit: 10) == 3)
        #expect(state.reserveReplay(limit: 10) == 0)
        // While replaying, live messages are spooled behind the backlog.
        #expect(state.submit(entry(9), device: "a", source: nil, completion: nil).spool.count == 1)
        #expect(state.replayFinished().replay)
        state.replayPassStarted()
        state.releaseReplayRoom(1)
        _ = state.spoolCaughtUp()
        #expect(state.mode == .direct)
        // One replayed entry is still in flight: two live messages fit.
        #expect(submit(10, into: &state).count == 1)
        #expect(submit(11, into: &state).count == 1)
        #expect(submit(12, into: &state).isEmpty)
    }

    @Test func aRefusalThatMayPassHoldsTheReplayAndTheCatchUpUntilItRestarts() {
        var state = OutboxState(window: 3, spoolIsEmpty: false)
        _ = state.brokerConnected()
        state.replayPassStarted()
        #expect(state.reserveReplay(limit: 10) == 3)
        let start = ContinuousClock.now
        let first = state.replayRefusedForNow(at: start)
        #expect(first.restartAfter == .seconds(1) && !first.effects.replay && state.inFlight == 2)
        #expect(state.replayRefusedForNow(at: start).restartAfter == nil)  // a second refusal joins the hold
        #expect(state.reserveReplay(limit: 10) == 0 && !state.requestReplay())
        _ = state.spoolCaughtUp()
        #expect(state.mode == .spooling)  // live messages may not overtake the refused entry
        #expect(state.replayRestarts(at: start + .seconds(1)).replay)
        state.replayPassStarted()
        #expect(state.reserveReplay(limit: 10) == 2)
    }

    @Test func aWrittenAheadMessageRefusedForNowFreesItsRoomAndHoldsWithoutSpoolingItAgain() {
        var state = connected(window: 2)
        let written = state.submit(entry(0), device: "a", source: nil, completion: nil, spooled: true, ticket: 7)
        #expect(handedOver(written, &state).map(\.ticket) == [7])
        #expect(submit(1, into: &state).count == 1)  // not written ahead (the disk was full): in `unconfirmed`
        #expect(submit(2, into: &state).isEmpty)  // waits for room
        let refusal = state.replayRefusedForNow(at: .now, replayed: false)  // entry 0's refusal
        #expect(refusal.restartAfter == .seconds(1) && state.mode == .spooling && state.inFlight == 1)
        // Entry 0 is still in the spool, where the rewind reads it: only the others go there, 1 before 2.
        #expect(refusal.effects.spool.map(\.entry) == [entry(1), entry(2)])
        #expect(!refusal.effects.drain)
    }

    @Test func aRefusalAfterTheCatchUpSpoolsLiveMessagesAgainBehindTheRefusedEntry() {
        var state = OutboxState(window: 3, spoolIsEmpty: false)
        _ = state.brokerConnected()
        state.replayPassStarted()
        #expect(state.reserveReplay(limit: 10) == 3)
        state.releaseReplayRoom(2)  // one replayed entry still in flight at the catch-up
        _ = state.spoolCaughtUp()
        #expect(state.mode == .direct)
        #expect(handedOver(state.submit(entry(5), device: "b", source: nil, completion: nil), &state).count == 1)
        #expect(submit(0, into: &state).count == 1)
        #expect(submit(1, into: &state).isEmpty)  // waits for room
        let refusal = state.replayRefusedForNow(at: .now)  // the replayed entry, of a device we cannot tell
        #expect(refusal.restartAfter != nil && state.mode == .spooling)
        // The room it frees takes no live message out. The waiting one is spooled, behind copies of every device's
        // unconfirmed ones (b's has nothing waiting behind it), and the rewind reads the refused entry again first.
        #expect(!refusal.effects.drain)
        let spooled = refusal.effects.spool.map(\.entry)
        #expect(Set(spooled.map(\.payload)) == Set([entry(5), entry(0), entry(1)].map(\.payload)))
        #expect(spooled.firstIndex(of: entry(0))! < spooled.firstIndex(of: entry(1))!)
        #expect(spooled.count == 3)
    }

    @Test func aBrokerThatRefusesAgainSoonAfterARestartIsWaitedForLonger() {
        var state = OutboxState(window: 3, spoolIsEmpty: false)
        _ = state.brokerConnected()
        var now = ContinuousClock.now
        var waits: [Duration] = []
        for _ in 0..<7 {
            state.replayPassStarted()
            _ = state.reserveReplay(limit: 1)
            let wait = state.replayRefusedForNow(at: now).restartAfter!
            waits.append(wait)
            now += wait
            _ = state.replayRestarts(at: now)
            now += .milliseconds(100)  // refused again right after the restart
        }
        #expect(waits == [1, 2, 4, 8, 16, 30, 30].map { Duration.seconds($0) })
        // Refused again only long after the last restart: back to a second.
        state.replayPassStarted()
        _ = state.reserveReplay(limit: 1)
        #expect(state.replayRefusedForNow(at: now + .seconds(120)).restartAfter == .seconds(1))
    }

    @Test func leftoversAtShutdownAreInArrivalOrder() {
        var state = connected(window: 1)
        _ = state.submit(entry(0), device: "b", source: nil, completion: nil)
        _ = state.submit(entry(1), device: "a", source: nil, completion: nil)
        _ = state.submit(entry(2), device: "b", source: nil, completion: nil)
        state.stop()
        #expect(state.takeLeftovers().spool.map(\.entry) == [entry(0), entry(1), entry(2)])
    }

    /// A message handed to the broker is answered by its PUBACK or by its copy in the spool, whichever comes first, and
    /// only once: here the PUBACK comes after the copy was made, and the copy's append completes after that.
    @Test func aMessageCopiedToTheSpoolIsAnsweredOnce() {
        var state = connected(window: 1)
        let answers = Mutex<[PublishOutcome]>([])
        let published = state.submit(entry(0), device: "a", source: nil, completion: { outcome in answers.withLock { $0.append(outcome) } })
        let inFlight = handedOver(published, &state)
        _ = state.submit(entry(1), device: "a", source: nil, completion: { _ in })
        state.stop()
        let spool = state.takeLeftovers().spool
        #expect(spool.map(\.entry) == [entry(0), entry(1)])
        inFlight[0].answer(.safe)
        spool[0].completion?(.refused(.spoolFull, "full"))
        #expect(answers.withLock { $0 } == [.safe])
    }

    /// A live message whose connection ended before its PUBACK goes to the spool with its device's other unconfirmed
    /// messages, in order, each answered by its copy; the others' failures that follow find nothing left to move.
    @Test func aMessageTheConnectionLostGoesToTheSpoolWithItsDevicesOthers() {
        var state = connected(window: 3)
        for index in 0..<3 { _ = state.submit(entry(index), device: index == 1 ? "b" : "a", source: nil, completion: nil) }
        _ = state.brokerDisconnected()
        let lost = state.lostWithConnection(device: "a")
        #expect(lost.spool.map(\.entry) == [entry(0), entry(2)])
        #expect(lost.spool.allSatisfy { $0.completion != nil })
        #expect(state.lostWithConnection(device: "a").spool.isEmpty)
        #expect(state.lostWithConnection(device: "b").spool.map(\.entry) == [entry(1)])
        #expect(!state.isBusy)
    }

    func bestEffort(_ index: Int, qos: MQTTQoS = .atLeastOnce, device: String = "") -> OutboxState.Message {
        OutboxState.Message(id: 0, entry: entry(index), device: device, isBestEffort: true, qos: qos)
    }

    @Test func bestEffortQoS1SharesTheOneWindow() {
        var state = connected(window: 2)
        #expect(submit(0, into: &state).count == 1)
        #expect(handedOver(state.submitBestEffort(bestEffort(1), source: nil), &state).count == 1)
        // The window is full: a third QoS 1 publish of either kind waits, so no more than `window` wait for a PUBACK.
        #expect(handedOver(state.submitBestEffort(bestEffort(2), source: nil), &state).isEmpty)
        #expect(submit(3, into: &state).isEmpty)
        let freed = handedOver(state.bestEffortPublished(), &state)
        #expect(freed.map(\.entry) == [entry(2)])
        #expect(handedOver(state.published(id: 0, device: "a"), &state).map(\.entry) == [entry(3)])
    }

    @Test func bestEffortIsRefusedWhileTheBrokerIsAwayAndNeverSpooled() {
        var state = OutboxState(window: 1, spoolIsEmpty: true)
        #expect(state.submitBestEffort(bestEffort(0), source: nil).refused.count == 1)
        _ = state.brokerConnected()
        _ = submit(1, into: &state)
        _ = state.submitBestEffort(bestEffort(2), source: nil)  // waits for room
        let lost = state.brokerDisconnected()
        #expect(lost.refused.map(\.entry) == [entry(2)])
        #expect(lost.spool.isEmpty)
        // The device's next message is spooled behind a copy of its unconfirmed one; the best-effort one is gone.
        #expect(state.submit(entry(3), device: "a", source: nil, completion: nil).spool.map(\.entry) == [entry(1), entry(3)])
    }

    @Test func aDevicesQoS0MessageNeverOvertakesItsSpooledOnes() {
        var state = connected(window: 1)
        _ = submit(0, into: &state)
        _ = submit(1, into: &state)  // waits
        // Behind the waiting one, and without taking room in the window once its turn comes; it goes once fewer
        // than the window's publishes are unanswered (libmosquitto then holds none of them back).
        #expect(handedOver(state.submitBestEffort(bestEffort(2, qos: .atMostOnce, device: "a"), source: nil), &state).isEmpty)
        #expect(handedOver(state.published(id: 0, device: "a"), &state).map(\.entry) == [entry(1)])
        #expect(handedOver(state.published(id: 1, device: "a"), &state).map(\.entry) == [entry(2)])
        #expect(state.inFlight == 0)
        _ = state.brokerDisconnected()
        _ = state.brokerConnected()  // spooling until the replay catches up
        #expect(state.mode == .spooling)
        #expect(state.submitBestEffort(bestEffort(3, qos: .atMostOnce, device: "a"), source: nil).refused.count == 1)
        // The gateway's own QoS 0 (health) has nothing to overtake.
        #expect(handedOver(state.submitBestEffort(bestEffort(4, qos: .atMostOnce), source: nil), &state).count == 1)
    }

    /// `mayPublishAtMostOnceNow` (mutating only for the lock's sake) on a copy.
    func goesAtOnce(_ state: OutboxState, _ device: String) -> Bool {
        var state = state
        return state.mayPublishAtMostOnceNow(device: device)
    }

    @Test func aQoS0MessageSkipsTheQueuesOnlyWhenNothingOfItsDeviceCanStillBeOnItsWay() {
        var state = OutboxState(window: 2, spoolIsEmpty: true)
        #expect(!goesAtOnce(state, "a") && !goesAtOnce(state, ""))  // no broker
        _ = state.brokerConnected()
        #expect(goesAtOnce(state, "a"))
        // A thread hands messages over: its batch may hold the device's earlier ones, until it finds nothing more.
        let started = state.submit(entry(0), device: "a", source: nil, completion: nil)
        #expect(started.drain && !goesAtOnce(state, "a"))
        var batch: [OutboxState.Message] = []
        var wantsRoomAfter = false
        let took = state.nextToPublish(into: &batch, wantsRoomAfter: &wantsRoomAfter)
        #expect(took && !goesAtOnce(state, "a"))
        batch.removeAll()
        let tookMore = state.nextToPublish(into: &batch, wantsRoomAfter: &wantsRoomAfter)
        #expect(!tookMore && goesAtOnce(state, "a"))
        // The window is full (libmosquitto would hold back a QoS 1 publish beyond it, and write the QoS 0 one at
        // once), or a message waits for room.
        #expect(submit(1, into: &state).count == 1)
        #expect(!goesAtOnce(state, "a"))
        #expect(submit(2, into: &state).isEmpty)
        #expect(handedOver(state.published(id: 0, device: "a"), &state).map(\.entry) == [entry(2)])
        #expect(!goesAtOnce(state, "a"))
        _ = state.published(id: 1, device: "a")
        #expect(goesAtOnce(state, "a") && goesAtOnce(state, ""))
        // While messages are spooled only the gateway's own may go: a device's would overtake its spooled ones.
        _ = state.brokerDisconnected()
        #expect(!goesAtOnce(state, ""))
        _ = state.brokerConnected()
        #expect(state.mode == .spooling)
        #expect(!goesAtOnce(state, "a") && goesAtOnce(state, ""))
    }

    @Test func qos0MessagesWaitWhileTheClientsQueueIsFull() {
        var state = connected(window: 4)
        state.atMostOnceQueueFull()
        #expect(!goesAtOnce(state, "a") && !goesAtOnce(state, ""))
        #expect(handedOver(state.submitBestEffort(bestEffort(0, qos: .atMostOnce, device: "a"), source: nil), &state).isEmpty)
        // A QoS 1 message has its own limit (the window), but waits behind the QoS 0 one, in order.
        #expect(submit(1, into: &state).isEmpty)
        #expect(handedOver(state.atMostOnceRoomMade(), &state).map(\.entry) == [entry(0), entry(1)])
        #expect(goesAtOnce(state, "a"))
        // A new connection's client starts with an empty queue.
        state.atMostOnceQueueFull()
        _ = state.brokerDisconnected()
        _ = state.brokerLinkUp(inflightLimit: 4)
        #expect(goesAtOnce(state, ""))
    }

    /// QoS 0 media that waited for the client's room is released 4 MiB at a time (and one frame): the client offers
    /// room below half its 8 MiB, so the whole waiting queue at once could take it to 12 MiB. The rest waits for the
    /// client's room again, asked for once the drain has handed the release over.
    @Test func qos0MessagesThatWaitedAreReleasedAFewMegabytesAtATime() {
        var state = waitingFrames(10)
        for release in [0..<4, 4..<8] {
            let effects = state.atMostOnceRoomMade()
            #expect(effects.drain && !state.atMostOnceRoom)
            let drained = drain(&state)
            #expect(drained.messages.map { Int($0.entry.payload[0]) } == Array(release) && drained.wantedRoom)
        }
        let last = state.atMostOnceRoomMade()
        #expect(state.atMostOnceRoom)
        let drained = drain(&state)
        #expect(drained.messages.map { Int($0.entry.payload[0]) } == [8, 9] && !drained.wantedRoom)
    }

    /// The room is asked for by whichever thread hands the release over, after it did: here another thread is
    /// draining when the room is made, so the one the room wakes has nothing to drain and must not ask (the client
    /// would still have room, and the next release would follow before this one is written).
    @Test func theRoomForTheNextReleaseIsAskedForAfterTheHandoverWhoeverDrains() {
        var state = waitingFrames(10, whileAnotherThreadDrains: true)
        let effects = state.atMostOnceRoomMade()
        #expect(!effects.drain && !state.atMostOnceRoom)
        let drained = drain(&state)
        #expect(drained.messages.count == 5 && drained.wantedRoom)
    }

    /// A client without room, and `count` QoS 0 frames of 1 MiB waiting for it (the first byte of each its index);
    /// `whileAnotherThreadDrains`: a QoS 1 message of another device was started before and is not yet handed over.
    func waitingFrames(_ count: Int, whileAnotherThreadDrains: Bool = false) -> OutboxState {
        var state = OutboxState(window: 4, spoolIsEmpty: true, highWaterBytes: 64 << 20)
        _ = state.brokerConnected()
        if whileAnotherThreadDrains { #expect(state.submit(entry(0), device: "b", source: nil, completion: nil).drain) }
        state.atMostOnceQueueFull()
        for index in 0..<count {
            let frame = OutboxState.Message(
                id: 0, entry: SpoolEntry(topic: "t/a/media/clip", payload: [UInt8](repeating: UInt8(index), count: 1 << 20), receivedAt: 0),
                device: "a", isBestEffort: true, qos: .atMostOnce)
            #expect(handedOver(state.submitBestEffort(frame, source: nil), &state).isEmpty)
        }
        return state
    }

    @Test func theWindowIsNoLargerThanTheBrokersReceiveMaximum() {
        var state = OutboxState(window: 4, spoolIsEmpty: true)
        _ = state.brokerLinkUp(inflightLimit: 2)
        _ = state.brokerConnected()
        #expect(state.window == 2 && state.highWater == 4)
        #expect(submit(0, into: &state).count == 1)
        #expect(submit(1, into: &state).count == 1)
        #expect(submit(2, into: &state).isEmpty)  // libmosquitto would have held it back: it waits here
        // So a QoS 0 message of the device, which libmosquitto would write at once, waits behind it.
        #expect(handedOver(state.submitBestEffort(bestEffort(3, qos: .atMostOnce, device: "a"), source: nil), &state).isEmpty)
        #expect(handedOver(state.published(id: 0, device: "a"), &state).map(\.entry) == [entry(2)])
        #expect(handedOver(state.published(id: 1, device: "a"), &state).map(\.entry) == [entry(3)])
        // The next connection's broker allows more: the window grows up to `mqtt.max_inflight`, no further.
        _ = state.brokerDisconnected()
        _ = state.brokerLinkUp(inflightLimit: 65_535)
        #expect(state.window == 4)
    }

    @Test func theReplayFillsMaxInflightAndLiveMessagesWaitUntilLibmosquittoHoldsNoneBack() {
        var state = OutboxState(window: 4, spoolIsEmpty: false)
        _ = state.brokerLinkUp(inflightLimit: 2)
        _ = state.brokerConnected()
        state.replayPassStarted()
        // No device's message is published live meanwhile, so the replay may fill `mqtt.max_inflight`.
        #expect(state.reserveReplay(limit: 10) == 4)
        state.releaseReplayRoom(1)  // the pass found three entries
        _ = state.spoolCaughtUp()
        // Three replayed entries are unanswered, one of them held back by libmosquitto: live messages of either
        // QoS wait until fewer than the broker's 2 are.
        #expect(submit(0, into: &state).isEmpty)
        #expect(handedOver(state.submitBestEffort(bestEffort(1, qos: .atMostOnce, device: "a"), source: nil), &state).isEmpty)
        #expect(handedOver(state.replayFinished(), &state).isEmpty)
        #expect(handedOver(state.replayFinished(), &state).map(\.entry) == [entry(0)])
        #expect(handedOver(state.replayFinished(), &state).map(\.entry) == [entry(1)])
    }

    @Test func messagesWrittenAheadAreNeitherCopiedNorSpooledAgain() {
        var state = connected(window: 1)
        #expect(state.publishesDirectly)
        let first = state.submit(entry(0), device: "a", source: nil, completion: nil, spooled: true)
        #expect(handedOver(first, &state).map(\.entry) == [entry(0)])
        _ = state.submit(entry(1), device: "a", source: nil, completion: nil, spooled: true)  // waits for room
        _ = state.submit(entry(2), device: "a", source: nil, completion: nil)  // the spool refused it: not written ahead
        let lost = state.brokerDisconnected()
        // Entries 0 and 1 are in the spool already (its rewind reads them again): only entry 2 goes there.
        #expect(lost.spool.map(\.entry) == [entry(2)])
        #expect(!state.publishesDirectly && state.waitingCount == 0)
        state.stop()
        #expect(state.takeLeftovers().spool.isEmpty)
    }

    @Test func aSpoolThatOpensLaterWithEntriesIsReplayedBeforeNewMessages() {
        var state = connected(window: 2)
        #expect(submit(0, into: &state).count == 1)
        let opened = state.spoolOpenedWithEntries()
        #expect(opened.replay && state.mode == .spooling)
        #expect(state.submit(entry(1), device: "a", source: nil, completion: nil).spool.map(\.entry) == [entry(0), entry(1)])
    }
}
