/// A closure to keep in a `Mutex`. Kept bare, an optional closure is wrapped in reabstraction thunks by every
/// `withLock` that hands it out (the `inout` write-back), so each later call runs through a longer chain and
/// its contexts leak (seen with Swift 6.3: `make soak` memory, and a spool drain slowing with every pass).
/// In a class box the closure itself is never written back.
final class ClosureBox<Input, Output>: Sendable {
    let call: @Sendable (Input) -> Output

    init(_ call: @escaping @Sendable (Input) -> Output) {
        self.call = call
    }
}
