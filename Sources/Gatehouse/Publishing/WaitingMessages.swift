import NIOCore

/// The messages waiting in the outbox's memory for room, oldest first, and their payload bytes: `OutboxState` pauses a
/// device by either. Counted alone, the waiting messages of a camera (up to `mqtt.max_inflight` of them, media frames
/// of megabytes each) were hundreds of megabytes.
struct WaitingMessages {
    private var messages = CircularBuffer<OutboxState.Message>()
    /// The payload bytes of the messages.
    private(set) var bytes = 0

    var count: Int { messages.count }
    var isEmpty: Bool { messages.isEmpty }
    var first: OutboxState.Message? { messages.first }

    mutating func append(_ message: OutboxState.Message) {
        messages.append(message)
        bytes += message.entry.payload.count
    }

    mutating func popFirst() -> OutboxState.Message? {
        guard let message = messages.popFirst() else { return nil }
        bytes -= message.entry.payload.count
        return message
    }

    /// All of them, emptied out, oldest first.
    mutating func takeAll() -> [OutboxState.Message] {
        defer {
            messages.removeAll()
            bytes = 0
        }
        return Array(messages)
    }
}
