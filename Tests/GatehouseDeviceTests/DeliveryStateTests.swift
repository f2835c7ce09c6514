import GatehouseProtocol
import Synchronization
import Testing

@testable import GatehouseDevice

@Suite struct DeliveryStateTests {
    // MARK: seq and window

    @Test func seqsStartAtOneAndFollowCallOrder() async throws {
        let harness = DeliveryHarness(window: 8)
        var seqs: [UInt64] = []
        for index in 0..<5 { seqs.append(try await harness.admitted("m\(index)").seq) }
        #expect(seqs == [1, 2, 3, 4, 5])
        #expect(harness.read { $0.inFlight.keys.sorted() } == [1, 2, 3, 4, 5])
    }

    @Test func windowHoldsFurtherSendsUntilAnAnswerMakesRoom() async throws {
        let harness = DeliveryHarness(window: 2)
        let first = try await harness.admitted("a")
        let second = try await harness.admitted("b")
        let third = try await harness.enqueue("c")
        let fourth = try await harness.enqueue("d")
        #expect(harness.read { ($0.inFlight.count, $0.waiting.count) } == (2, 2))
        #expect(await finished(third) == nil, "the window is full: the third send waits")

        harness.ack(999)  // not in flight: nothing changes
        #expect(harness.read { ($0.inFlight.count, $0.waiting.count) } == (2, 2))

        harness.ack(first.seq)
        #expect(try await third.value.seq == 3)
        #expect(await finished(fourth) == nil)
        harness.nack(second.seq, NackCode.rateLimited.rawValue)
        #expect(try await fourth.value.seq == 4)
        #expect(harness.read { ($0.inFlight.keys.sorted(), $0.waiting.count) } == ([3, 4], 0))
    }

    @Test func windowBelowOneIsOne() async throws {
        let harness = DeliveryHarness(window: 0)
        _ = try await harness.admitted("a")
        let waiting = try await harness.enqueue("b")
        #expect(harness.read { $0.waiting.count } == 1)
        harness.ack(1)
        #expect(try await waiting.value.seq == 2)
    }

    // MARK: answers

    @Test func ackCompletesTheDeliveryOnceAndDuplicatesAreIgnored() async throws {
        let harness = DeliveryHarness(window: 4)
        let delivery = try await harness.admitted("a")
        harness.ack(delivery.seq)
        harness.ack(delivery.seq)
        harness.nack(delivery.seq, NackCode.badMessage.rawValue)
        #expect(try await delivery.outcome() == .acked)
        #expect(harness.read { ($0.stats.acked, $0.stats.nacked, $0.inFlight.isEmpty) } == (1, 0, true))
    }

    /// The SDK resends nothing a `nack` answered, whatever the code: the caller gets the refusal and decides
    /// (e.g. resend after `rate_limited`). Only unanswered messages are written again.
    @Test(arguments: [
        NackCode.badMessage, .unknownID, .rateLimited, .spoolFull, .brokerUnavailable, .brokerRejected,
    ])
    func nackCompletesTheDeliveryAndIsNeverResent(code: NackCode) async throws {
        let harness = DeliveryHarness(window: 4)
        harness.connect(1)
        harness.welcome(1)
        let refused = try await harness.admitted("refused")
        let pending = try await harness.admitted("pending")
        #expect(try await harness.drain(1).map(\.seq) == [1, 2])

        harness.nack(refused.seq, code.rawValue, "no")
        #expect(try await refused.outcome() == .nacked(code: code.rawValue, message: "no"))
        harness.end(1)
        harness.connect(2)
        harness.welcome(2)
        #expect(try await harness.drain(2).map(\.seq) == [pending.seq])
        #expect(harness.read { ($0.stats.nacked, $0.stats.resent) } == (1, 1))
    }

    // MARK: connections

    @Test func nothingIsWrittenBeforeTheWelcome() async throws {
        let harness = DeliveryHarness(window: 4)
        _ = try await harness.admitted("early")
        harness.connect(1)
        #expect(try await harness.drain(1).isEmpty)
        harness.welcome(1)
        let written = try await harness.drain(1)
        #expect(written.map(\.seq) == [1])
        #expect(written.map(\.name) == ["early"])
        #expect(written.first?.body == DeliveryHarness.body("early"))
    }

    @Test func unansweredMessagesAreResentInSeqOrderAfterReconnect() async throws {
        let harness = DeliveryHarness(window: 16)
        harness.connect(1)
        harness.welcome(1)
        var deliveries: [PendingDelivery] = []
        for index in 0..<6 { deliveries.append(try await harness.admitted("m\(index)")) }
        #expect(try await harness.drain(1).map(\.seq) == [1, 2, 3, 4, 5, 6])
        harness.ack(2)
        harness.ack(5)
        harness.end(1)
        // Sent while disconnected: waits in the window and goes out after the older ones.
        _ = try await harness.admitted("m6")
        harness.connect(2)
        harness.welcome(2)
        let resent = try await harness.drain(2)
        #expect(resent.map(\.seq) == [1, 3, 4, 6, 7])
        #expect(resent.map(\.name) == ["m0", "m2", "m3", "m5", "m6"])
        let stats = harness.read { $0.stats }
        #expect(stats.sent == 7)
        #expect(stats.resent == 4)
        #expect(stats.reconnects == 1)
        #expect(stats.connected)
    }

    @Test func helloGoesFirstOnEveryConnectionAndKeepsItsSeqUntilAcked() async throws {
        let harness = DeliveryHarness(window: 8, hello: DeviceHello(kind: "sensor", model: "m1"))
        _ = try await harness.admitted("a")
        harness.connect(1)
        harness.welcome(1)
        let first = try await harness.drain(1)
        #expect(first.map(\.name) == ["hello", "a"])
        #expect(first.map(\.seq) == [2, 1])
        guard case .hello(let hello) = first.first?.body else {
            Issue.record("expected hello first")
            return
        }
        #expect(hello.kind == "sensor")

        // Not acked: the same hello (same seq) again first.
        harness.end(1)
        harness.connect(2)
        harness.welcome(2)
        #expect(try await harness.drain(2).map(\.seq) == [2, 1])

        // Acked: the next connection gets a new hello with a fresh seq.
        harness.ack(2)
        harness.ack(1)
        harness.end(2)
        harness.connect(3)
        harness.welcome(3)
        let third = try await harness.drain(3)
        #expect(third.map(\.name) == ["hello"])
        #expect(third.map(\.seq) == [3])
    }

    @Test func eventsOfAnOldConnectionAreIgnored() async throws {
        let harness = DeliveryHarness(window: 4)
        harness.connect(1)
        harness.end(1)
        harness.connect(2)
        harness.welcome(1)  // stale
        #expect(harness.read { $0.connection?.ready } == false)
        #expect(await harness.poll(1) == nil)
        harness.end(1)  // stale: connection 2 stays
        #expect(harness.read { $0.connection?.id } == 2)
        harness.welcome(2)
        _ = try await harness.admitted("a")
        #expect(try await harness.drain(2).map(\.seq) == [1])
    }

    @Test func aWaitingWriterGetsTheNextMessageDirectly() async throws {
        let harness = DeliveryHarness(window: 4)
        harness.connect(1)
        harness.welcome(1)
        let writer = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<OutboundWrite?, Never>) in
                harness.state.withLock { $0.nextWrite(id: 1, continuation: continuation, isCancelled: false) }.perform()
            }
        }
        try await harness.settle { $0.connection?.writer != nil }
        _ = try await harness.admitted("a")
        let write = await writer.value
        guard case .text(let text)? = write?.frame else {
            Issue.record("expected the message")
            return
        }
        #expect(try DeviceMessage.parse(Array(text.utf8)).get().seq == 1)
    }

    @Test func endingTheConnectionReleasesItsWriter() async throws {
        let harness = DeliveryHarness(window: 4)
        harness.connect(1)
        let writer = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<OutboundWrite?, Never>) in
                harness.state.withLock { $0.nextWrite(id: 1, continuation: continuation, isCancelled: false) }.perform()
            }
        }
        try await harness.settle { $0.connection?.writer != nil }
        harness.end(1)
        #expect(await writer.value == nil)
        #expect(harness.read { ($0.connection == nil, $0.welcome == nil, $0.stats.connected) } == (true, true, false))
    }

    // MARK: fire-and-forget

    @Test func oneShotsNeedAReadyConnectionAndFailWhenItEndsUnwritten() async throws {
        let harness = DeliveryHarness(window: 4)
        let refused = await oneShot(harness)
        #expect((refused as? DeviceClientError)?.code == .notConnected)

        harness.connect(1)
        harness.welcome(1)
        _ = try await harness.admitted("acked")
        let queued = Task { await oneShot(harness) }
        try await harness.settle { $0.connection?.queue.count == 2 }
        harness.end(1)
        #expect((await queued.value as? DeviceClientError)?.code == .notConnected)
        #expect(harness.read { $0.inFlight.keys.sorted() } == [1], "the acknowledged message stays for the next connection")
    }

    private func oneShot(_ harness: DeliveryHarness) async -> (any Error)? {
        let id = harness.state.withLock { $0.makeID() }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                harness.state.withLock {
                    $0.sendOneShot(id: id, frame: .text("{}"), continuation: continuation, isCancelled: false)
                }.perform()
            }
            return nil
        } catch {
            return error
        }
    }

    // MARK: limits, idle, cancellation, stop

    @Test func aMessageOverTheGatewaysLimitIsRefusedAndTheNextOneStillGoes() async throws {
        let harness = DeliveryHarness(window: 4)
        harness.connect(1)
        harness.welcome(1, maxMessageBytes: 100)
        let tooBig = try await harness.enqueue(String(repeating: "x", count: 200))
        let result = await finished(tooBig)
        guard case .failure(let error as DeviceClientError)? = result else {
            Issue.record("expected messageTooBig, got \(String(describing: result))")
            return
        }
        #expect(error.code == .messageTooBig)
        let next = try await harness.admitted("ok")
        #expect(harness.read { $0.inFlight.keys.sorted() } == [next.seq])
        #expect(try await harness.drain(1).map(\.name) == ["ok"])
    }

    /// Found by this test: a message admitted while disconnected (the limit unknown) that is over the gateway's
    /// limit was written after the welcome, the gateway closed with 1009, and it was resent after every reconnect,
    /// so nothing behind it ever got through.
    @Test func anOversizedMessageAdmittedWhileDisconnectedIsRefusedAtTheWelcome() async throws {
        let harness = DeliveryHarness(window: 2)
        let small = try await harness.admitted("small")
        let big = try await harness.admitted(String(repeating: "x", count: 200))
        let after = try await harness.enqueue("after")
        #expect(harness.read { $0.waiting.count } == 1)
        harness.connect(1)
        harness.welcome(1, maxMessageBytes: 100)
        let refusal = await #expect(throws: DeviceClientError.self) { try await big.outcome() }
        #expect(refusal?.code == .messageTooBig)
        #expect(try await after.value.seq == 3, "the refused message made room in the window")
        let written = try await harness.drain(1)
        #expect(written.map(\.name) == ["small", "after"])
        #expect(written.map(\.seq) == [small.seq, 3])
    }

    @Test func waitIdleReturnsWhenTheWindowEmpties() async throws {
        let harness = DeliveryHarness(window: 1)
        #expect(await idle(harness) == nil, "nothing in flight: idle at once")
        _ = try await harness.admitted("a")
        let waiting = try await harness.enqueue("b")
        let idleTask = Task { await idle(harness) }
        try await harness.settle { !$0.idleWaiters.isEmpty }
        harness.ack(1)
        _ = try await waiting.value
        #expect(await finished(Task<(any Error)?, any Error> { await idleTask.value }) == nil, "b is still in flight")
        harness.ack(2)
        #expect(await idleTask.value == nil)
    }

    private func idle(_ harness: DeliveryHarness) async -> (any Error)? {
        let id = harness.state.withLock { $0.makeID() }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                harness.state.withLock { $0.waitIdle(id: id, continuation: continuation, isCancelled: false) }.perform()
            }
            return nil
        } catch {
            return error
        }
    }

    @Test func cancellingAWaitingSendRemovesItButNotAnAdmittedOne() async throws {
        let harness = DeliveryHarness(window: 1)
        let admitted = try await harness.admitted("a")
        let id = harness.state.withLock { $0.nextID }
        let waiting = try await harness.enqueue("b")
        harness.state.withLock { $0.cancelWaiting(id: id) }.perform()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        harness.state.withLock { $0.cancelWaiting(id: id) }.perform()  // twice: nothing left
        #expect(harness.read { ($0.waiting.count, $0.inFlight.keys.sorted()) } == (0, [admitted.seq]))
        harness.ack(admitted.seq)
        #expect(try await admitted.outcome() == .acked)
    }

    @Test func stopFailsEverythingWaitingAndRefusesNewSends() async throws {
        let harness = DeliveryHarness(window: 1)
        harness.connect(1)
        harness.welcome(1)
        let inFlight = try await harness.admitted("a")
        let waiting = try await harness.enqueue("b")
        let idleTask = Task { await idle(harness) }
        try await harness.settle { !$0.idleWaiters.isEmpty }
        harness.state.withLock { $0.stop() }.perform()

        await #expect(throws: DeviceClientError.self) { try await inFlight.outcome() }
        await #expect(throws: DeviceClientError.self) { try await waiting.value }
        #expect((await idleTask.value as? DeviceClientError)?.code == .stopped)
        let late = try await harness.enqueue("c")
        let result = await finished(late)
        guard case .failure(let error as DeviceClientError)? = result else {
            Issue.record("a send after stop should fail, got \(String(describing: result))")
            return
        }
        #expect(error.code == .stopped)
        #expect(harness.read { ($0.connection == nil, $0.inFlight.isEmpty, $0.stats.connected) } == (true, true, false))
        harness.ack(inFlight.seq)  // a late answer changes nothing
        #expect(harness.read { $0.stats.acked } == 0)
    }
}
