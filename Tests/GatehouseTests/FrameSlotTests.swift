import NIOCore
import NIOEmbedded
import Testing

@testable import Gatehouse

/// Newest-frame-wins per viewer: at most one frame in flight and one waiting, older ones dropped.
@Suite struct FrameSlotTests {
    @Test("a frame goes out at once when nothing is in flight and the connection takes writes")
    func sendsAtOnce() {
        var slot = FrameSlot<Int>()
        let offer = slot.offer(1, writable: true)
        #expect(offer.send == 1 && !offer.dropped)
        #expect(slot.inFlight)
    }

    @Test("while one is in flight the newest waits and replaces the older one")
    func newestWins() {
        var slot = FrameSlot<Int>()
        _ = slot.offer(1, writable: true)
        #expect(slot.offer(2, writable: true).send == nil)
        let third = slot.offer(3, writable: true)
        #expect(third.send == nil && third.dropped)
        #expect(slot.waiting == 3)
        #expect(slot.written(writable: true) == 3)
        #expect(slot.written(writable: true) == nil)
        #expect(!slot.inFlight)
    }

    @Test("an unwritable connection holds the newest frame until it becomes writable")
    func unwritable() {
        var slot = FrameSlot<Int>()
        #expect(slot.offer(1, writable: false).send == nil)
        #expect(slot.offer(2, writable: false).dropped)
        #expect(slot.next(writable: false) == nil)
        #expect(slot.next(writable: true) == 2)
        #expect(slot.next(writable: true) == nil)
    }

    @Test("a completed write with the connection still full keeps the waiting frame")
    func writtenButFull() {
        var slot = FrameSlot<Int>()
        _ = slot.offer(1, writable: true)
        _ = slot.offer(2, writable: true)
        #expect(slot.written(writable: false) == nil)
        #expect(slot.waiting == 2)
        #expect(slot.next(writable: true) == 2)
    }

    @Test("a frame offered while the connection is writable again overtakes the older waiting one")
    func overtakes() {
        var slot = FrameSlot<Int>()
        _ = slot.offer(1, writable: false)
        let offer = slot.offer(2, writable: true)
        #expect(offer.send == 2 && offer.dropped)
        #expect(slot.waiting == nil)
    }

    @Test("FramePump on a channel: one shared buffer per frame, the newest written when the channel drains")
    func pumpOnChannel() throws {
        let channel = EmbeddedChannel()
        let pump = FramePump(channel: channel, metrics: nil) { frame, promise in
            channel.writeAndFlush(frame, promise: promise)
        }
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let first = ByteBuffer(string: "first")
        pump.offer(first)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == first)
        channel.isWritable = false
        pump.offer(ByteBuffer(string: "old"))
        pump.offer(ByteBuffer(string: "newest"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.isWritable = true
        pump.writabilityChanged()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "newest"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    /// Our close frame went out (`stop`): nothing follows it, neither the frame that waited, nor the next one when the
    /// frame in flight is written, nor a new one (RFC 6455 5.5.1).
    @Test func nothingFollowsTheStop() throws {
        let channel = EmbeddedChannel()
        var promises: [EventLoopPromise<Void>] = []
        let pump = FramePump(channel: channel, metrics: nil) { frame, promise in
            channel.writeAndFlush(frame, promise: nil)
            promises.append(promise)  // written when the test says
        }
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        pump.offer(ByteBuffer(string: "in flight"))
        pump.offer(ByteBuffer(string: "waiting"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "in flight"))
        pump.stop()
        promises.removeFirst().succeed()
        pump.offer(ByteBuffer(string: "after"))
        pump.writabilityChanged()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(promises.isEmpty)
    }
}
