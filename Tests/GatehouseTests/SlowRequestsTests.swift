import Dispatch
import Synchronization
import Testing

@testable import Gatehouse

/// The broker-side work that one small message can ask for is bounded: a flood of requests neither queues without
/// end nor runs a rediscovery per message.
@Suite struct SlowRequestsTests {
    /// Holds the queue busy until `release` is called: what is submitted meanwhile waits.
    private func occupy(_ requests: SlowRequests) -> @Sendable () -> Void {
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        #expect(requests.submit { started.signal(); gate.wait() })
        started.wait()
        return { gate.signal() }
    }

    @Test func atMostMaxWaitingJobsWaitAndTheRestAreRefused() {
        let requests = SlowRequests()
        let ran = Atomic<Int>(0)
        let release = occupy(requests)
        for _ in 0..<SlowRequests.maxWaiting { #expect(requests.submit { ran.add(1, ordering: .relaxed) }) }
        #expect(!requests.submit { ran.add(1, ordering: .relaxed) })
        release()
        requests.sync {}
        #expect(ran.load(ordering: .relaxed) == SlowRequests.maxWaiting)
        // Room again once they ran.
        #expect(requests.submit {})
    }

    @Test func coalescedWorkWaitsOnceWhateverAskedForItMeanwhile() {
        let requests = SlowRequests()
        let ran = Atomic<Int>(0)
        let release = occupy(requests)
        for _ in 0..<100 { requests.submit(.rediscovery) { ran.add(1, ordering: .relaxed) } }
        requests.submit(.pendingSweep) { ran.add(10, ordering: .relaxed) }
        release()
        requests.sync {}
        #expect(ran.load(ordering: .relaxed) == 11)
        // It ran: the next one is queued again.
        requests.submit(.rediscovery) { ran.add(1, ordering: .relaxed) }
        requests.sync {}
        #expect(ran.load(ordering: .relaxed) == 12)
    }

    /// A coalesced job starts no sooner than its spacing after the last one started; more requests meanwhile add nothing.
    @Test func coalescedWorkStartsNoSoonerThanItsSpacing() async throws {
        let requests = SlowRequests()
        let starts = Mutex<[ContinuousClock.Instant]>([])
        let spacing: Duration = .milliseconds(300)
        func submit() { requests.submit(.rediscovery, spacing: spacing) { starts.withLock { $0.append(.now) } } }
        func started(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(30)
            while starts.withLock({ $0.count }) < count, .now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        }
        submit()  // none started before: at once
        try await started(1)
        submit()  // waits for the spacing
        submit()  // joins the one waiting
        try await started(2)
        try await Task.sleep(for: .milliseconds(100))
        let all = starts.withLock { $0 }
        #expect(all.count == 2)
        if all.count == 2 { #expect(all[1] - all[0] >= spacing) }
    }
}
