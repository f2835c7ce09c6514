import GatehouseProtocol
import Mosquitto
import NIOCore
import Synchronization

/// The text frames on their way to the devices of one event loop, handed in from any thread (the acks from the MQTT
/// thread, mostly). They are written in the order they came, by one task on the loop for all that came since it
/// was queued: each device's frames encoded one after the other into one buffer (an ack is encoded there, from its
/// `seq`, and costs no allocation of its own), written through the device's `SendQueueLimit` and flushed once. So a
/// network pass's worth of PUBACKs, hundreds of acks for dozens of devices, costs the loop one task, one buffer and
/// one write(2) per device, not a task, a buffer and a frame per ack. From the MQTT network thread, the loop is woken
/// at the end of that thread's pass (``AfterPass``), once the publishes those PUBACKs released are written; a frame
/// from any other thread meanwhile wakes it at once, and takes those along. Only the wake-up waits: items keep their
/// order, though a task that the network thread gives the loop directly (`execute`) may now run before a frame it
/// handed in earlier.
final class LoopFrames: Sendable {
    /// A text frame for one device's connection, or something to do in order with the frames (the closing handshake).
    private enum Item: Sendable {
        case ack(DeviceSession, seq: UInt64)
        case text(DeviceSession, [UInt8])
        case action(@Sendable () -> Void)
    }

    let loop: any EventLoop
    private let queue = Mutex(Queue())
    /// Loop-only state, kept between deliveries with its capacity so that a delivery of up to `keptItems` items for as
    /// many devices allocates no arrays: the items' array the next delivery swaps for the queue's, and the buffers by
    /// device.
    private nonisolated(unsafe) var spareItems: [Item] = []
    private nonisolated(unsafe) var batches = Batches()
    /// Beyond this many items (or devices), a delivery's lists are not kept (a burst's worth of memory would stay).
    private static let keptItems = 1024

    private struct Queue {
        var items: [Item] = []
        var delivery = Delivery.none
    }

    private enum Delivery {
        case none
        /// The network thread wakes the loop at the end of its pass.
        case deferred
        /// A `deliver` task is queued on the loop and has not taken the items yet.
        case queued
    }

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Sends `{"type":"ack","seq":<seq>}`.
    func sendAck(_ seq: UInt64, to session: DeviceSession) {
        enqueue(.ack(session, seq: seq))
    }

    /// Sends prepared UTF-8 JSON as a text frame.
    func send(text: [UInt8], to session: DeviceSession) {
        enqueue(.text(session, text))
    }

    /// Runs `action` on the loop after the frames handed in before it were written.
    func run(_ action: @escaping @Sendable () -> Void) {
        enqueue(.action(action))
    }

    private func enqueue(_ item: Item) {
        let deferring = AfterPass.isNetworkThread
        let start: Delivery = queue.withLock { queue in
            queue.items.append(item)
            switch (queue.delivery, deferring) {
            case (.queued, _), (.deferred, true):
                return .none
            case (.none, true):
                queue.delivery = .deferred
            case (.none, false), (.deferred, false):
                queue.delivery = .queued
            }
            return queue.delivery
        }
        switch start {
        case .none: break
        case .deferred: AfterPass.run { self.startDeferredDelivery() }
        case .queued: loop.execute { self.deliver() }
        }
    }

    /// The end of the network thread's pass: the loop is woken unless a frame from elsewhere did it meanwhile.
    private func startDeferredDelivery() {
        let start = queue.withLock { queue in
            guard queue.delivery == .deferred else { return false }
            queue.delivery = .queued
            return true
        }
        if start { loop.execute { self.deliver() } }
    }

    private func deliver() {
        loop.assertInEventLoop()
        var items = spareItems
        spareItems = []
        queue.withLock { queue in
            queue.delivery = .none
            swap(&items, &queue.items)
        }
        for item in items {
            switch item {
            case .ack(let session, let seq):
                GatewayMessage.withAck(seq: seq) { batches.append($0, isAck: true, for: session) }
            case .text(let session, let text):
                text.withUnsafeBytes { batches.append($0, for: session) }
            case .action(let action):
                batches.write()
                action()
            }
        }
        batches.write()
        if items.capacity <= Self.keptItems {
            items.removeAll(keepingCapacity: true)
            spareItems = items
        }
    }

    /// A device's buffer in one delivery is written once it holds this much, and another begun: the send-queue cap
    /// (`SendQueueLimit`) is checked per buffer, so a delivery with many commands for one device is checked every
    /// 64 KiB rather than once.
    static let batchBytes = 64 * 1024

    /// One delivery's frames: a buffer per device, its frames in the order they came.
    private struct Batches {
        private var batches: [(session: DeviceSession, frames: ByteBuffer)] = []
        /// Where each device's buffer is, made for the second device (a lone welcome or answer needs none).
        private var slots: [ObjectIdentifier: Int] = [:]

        /// `isAck`: acks come in runs, so their buffer starts with room for about ten; any other frame's starts with
        /// room for itself (a transient buffer larger than needed costs memory on a box of idle devices).
        mutating func append(_ payload: UnsafeRawBufferPointer, isAck: Bool = false, for session: DeviceSession) {
            let capacity = isAck ? 256 : payload.count + 10
            if let slot = slot(of: session) {
                if batches[slot].frames.readableBytes >= LoopFrames.batchBytes {
                    session.write(encoded: batches[slot].frames)
                    batches[slot].frames = session.channel.allocator.buffer(capacity: capacity)
                }
                return batches[slot].frames.writeServerTextFrame(payload)
            }
            var frames = session.channel.allocator.buffer(capacity: capacity)
            frames.writeServerTextFrame(payload)
            if batches.count == 1 { slots[ObjectIdentifier(batches[0].session)] = 0 }
            if !batches.isEmpty { slots[ObjectIdentifier(session)] = batches.count }
            batches.append((session, frames))
        }

        private func slot(of session: DeviceSession) -> Int? {
            if batches.count == 1 { return batches[0].session === session ? 0 : nil }
            return slots[ObjectIdentifier(session)]
        }

        /// Writes and flushes each device's buffer (at the end, and before an action: it comes after them). The
        /// lists keep their capacity for the next delivery, unless a delivery to very many devices grew them.
        mutating func write() {
            for (session, frames) in batches { session.write(encoded: frames) }
            let keep = batches.count <= LoopFrames.keptItems
            batches.removeAll(keepingCapacity: keep)
            slots.removeAll(keepingCapacity: keep)
        }
    }
}
