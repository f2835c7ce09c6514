/// Whether a device's socket is read: the one decision over every reason to stop reading it.
///
/// - The outbox holds the device back (its waiting queue is full): decisions come from several threads, each
///   with an increasing `order`, and only a newer one counts.
/// - The device does not read what the gateway sends: its channel is not writable (more than the write
///   buffer's high-water mark waits to be written), so reading more of its messages would only add answers to
///   that pile.
/// - Closing overrides both: after our close frame the socket is read (and discarded) until the device's close
///   frame arrives, or the kernel would reset the connection and lose our close frame (RFC 6455 7.1.1).
struct ReadGate: Sendable, Equatable {
    private(set) var heldByOutbox = false
    private var outboxOrder: UInt64 = 0
    private(set) var peerNotReading = false
    private(set) var closing = false

    /// Whether the socket should be read now.
    var reads: Bool { closing || (!heldByOutbox && !peerNotReading) }

    /// An outbox decision; returns false (and changes nothing) when a newer one was recorded already.
    mutating func outbox(paused: Bool, order: UInt64) -> Bool {
        guard order > outboxOrder else { return false }
        (heldByOutbox, outboxOrder) = (paused, order)
        return true
    }

    /// The channel's writability changed.
    mutating func writable(_ writable: Bool) {
        peerNotReading = !writable
    }

    /// Our close frame is on its way.
    mutating func startClosing() {
        closing = true
    }
}
