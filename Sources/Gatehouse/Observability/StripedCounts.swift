import CThreadNumber
import Synchronization

/// Counts that several threads add to on every device message (messages and bytes in and out, acks): each thread adds
/// to a stripe of its own (by ``gatehouse_thread_number()``; threads beyond `stripes` share), and a count is read as
/// the sum of its stripes. With one counter for all, the event loops' threads took its cache line from each other at
/// every message (docs/benchmarks.md, "Optimisations").
final class StripedCounts: Sendable {
    /// How many counts there are; each is numbered from 0.
    let count: Int
    private let stripes: InlineArray<8, Stripe>

    /// At most `Stripe.capacity` counts.
    init(count: Int) {
        precondition(count <= Stripe.capacity)
        self.count = count
        stripes = InlineArray { _ in Stripe() }
    }

    func add(_ amount: Int, at index: Int) {
        stripes[Int(gatehouse_thread_number()) % stripes.count].counts[index].wrappingAdd(amount, ordering: .relaxed)
    }

    /// The count at `index`: what was added to it, by every thread, until about now.
    func sum(at index: Int) -> Int {
        var sum = 0
        for stripe in stripes.indices { sum &+= stripes[stripe].counts[index].load(ordering: .relaxed) }
        return sum
    }

    /// One thread's counts, followed by a cache line of padding, so that two stripes share no line.
    private struct Stripe: ~Copyable, Sendable {
        static var capacity: Int { 48 }
        let counts: InlineArray<48, Atomic<Int>> = InlineArray { _ in Atomic(0) }
        private let padding: InlineArray<8, Int> = InlineArray(repeating: 0)
    }
}
