#if canImport(Glibc)
@testable import Mosquitto
import Glibc
import Synchronization
import Testing

/// A thread's publishes inside a `PublishBatch` wake the network thread once, when the batch ends.
@Suite struct PublishBatchTests {
    @Test func theWakeUpWaitsForTheEndOfTheBatch() async throws {
        let sleeper = try await Sleeper()
        defer { sleeper.thread.join() }
        PublishBatch.run {
            sleeper.waker.wake()
            PublishBatch.run { sleeper.waker.wake() }  // a nested batch ends with the outer one
            usleep(100_000)
            #expect(!sleeper.hasReturned, "woken inside the batch")
        }
        #expect(try await eventually(timeout: .seconds(10)) { sleeper.hasReturned })
    }

    @Test func outsideABatchTheWakeUpIsNotHeld() async throws {
        let sleeper = try await Sleeper()
        defer { sleeper.thread.join() }
        sleeper.waker.wake()
        #expect(try await eventually(timeout: .seconds(10)) { sleeper.hasReturned })
    }
}

/// A thread asleep in a waker, as the network thread sleeps between reconnect attempts; it returns once woken.
private struct Sleeper {
    let waker: LoopWaker
    let thread: PlainThread
    private let state = State()

    var hasReturned: Bool { state.returned.load(ordering: .sequentiallyConsistent) }

    /// Returns once the thread counts as asleep.
    init() async throws {
        let waker = try LoopWaker()
        let state = self.state
        self.waker = waker
        thread = PlainThread {
            waker.sleep(until: .now + .seconds(60)) { state.stop.load(ordering: .sequentiallyConsistent) }
            state.returned.store(true, ordering: .sequentiallyConsistent)
        }
        #expect(try await eventually { waker.isAsleep })
        state.stop.store(true, ordering: .sequentiallyConsistent)  // the next wake-up ends the sleep
    }

    private final class State: Sendable {
        let stop = Atomic<Bool>(false)
        let returned = Atomic<Bool>(false)
    }
}
#endif
