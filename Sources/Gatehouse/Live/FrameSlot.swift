/// Newest-frame-wins for one viewer (PROTOCOL.md §8, backpressure): at most one frame is being written and
/// at most one waits. A frame that arrives while another waits replaces it (the older one is dropped, never
/// queued), so a slow viewer costs the gateway two frames of memory at most, and a frame that is shared with
/// every other viewer at that.
///
/// A value type without I/O: the viewer's connection asks it what to write and tells it when a write is done.
struct FrameSlot<Frame> {
    /// A frame has been handed to the connection and its write has not completed yet.
    private(set) var inFlight = false
    /// The newest frame not written yet.
    private(set) var waiting: Frame?

    /// What to do with an offered frame.
    struct Offer {
        /// Write this now.
        var send: Frame?
        /// An older waiting frame was dropped for this one.
        var dropped: Bool
    }

    /// A new frame: written at once when nothing is in flight and the connection takes writes, else it waits,
    /// replacing the frame that waited before it.
    mutating func offer(_ frame: Frame, writable: Bool) -> Offer {
        let dropped = waiting != nil
        if !inFlight && writable {
            waiting = nil
            inFlight = true
            return Offer(send: frame, dropped: dropped)
        }
        waiting = frame
        return Offer(send: nil, dropped: dropped)
    }

    /// The write in flight completed (or failed); returns the waiting frame to write next, if the
    /// connection takes writes.
    mutating func written(writable: Bool) -> Frame? {
        inFlight = false
        return next(writable: writable)
    }

    /// The frame to write now, if one waits, none is in flight and the connection takes writes.
    mutating func next(writable: Bool) -> Frame? {
        guard !inFlight, writable, let frame = waiting else { return nil }
        waiting = nil
        inFlight = true
        return frame
    }
}
