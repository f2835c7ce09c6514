#if canImport(Glibc)
@testable import Mosquitto
import Glibc
import Synchronization
import Testing

/// A thread's publishes inside a `PublishBatch` wake the network thread once, when the batch ends.
@Suite struct PublishBatchTests {
    @Test func theWakeUpWaitsForTheEndOfTheBatch() async throws {
        let waker = try LoopWaker()
        let state = SleepState()
        let sleeper = PlainThread { [waker] in
            waker.sleep(until: .now + .seconds(60)) { state.stop.load(ordering: .sequentiallyConsistent) }
            state.returned.store(true, ordering: .sequentiallyConsistent)
        }
        defer { sleeper.join() }
        #expect(try await eventually { waker.isAsleep })
        state.stop.store(true, ordering: .sequentiallyConsistent)
        PublishBatch.run {
            waker.wake()
            PublishBatch.run { waker.wake() }  // a nested batch ends with the outer one
            usleep(100_000)
            #expect(!state.hasReturned, "woken inside the batch")
        }
        #expect(try await eventually(timeout: .seconds(10)) { state.hasReturned })
    }

    @Test func outsideABatchTheWakeUpIsAtOnce() async throws {
        let waker = try LoopWaker()
        let state = SleepState()
        let sleeper = PlainThread { [waker] in
            waker.sleep(until: .now + .seconds(60)) { state.stop.load(ordering: .sequentiallyConsistent) }
            state.returned.store(true, ordering: .sequentiallyConsistent)
        }
        defer { sleeper.join() }
        #expect(try await eventually { waker.isAsleep })
        state.stop.store(true, ordering: .sequentiallyConsistent)
        waker.wake()
        #expect(try await eventually(timeout: .seconds(10)) { state.hasReturned })
    }
}

private final class SleepState: Sendable {
    let stop = Atomic<Bool>(false)
    let returned = Atomic<Bool>(false)
    var hasReturned: Bool { returned.load(ordering: .sequentiallyConsistent) }
}
#endif
