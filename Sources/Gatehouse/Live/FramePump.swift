import NIOCore

/// Writes frames to one viewer connection through a `FrameSlot`: one frame in flight, the newest one waiting,
/// older ones dropped. Lives on the connection's event loop (no locks); the handler that owns it tells it when
/// the channel's writability changes.
final class FramePump {
    private var slot = FrameSlot<ByteBuffer>()
    /// Set by `stop`: nothing more is written (our close frame went out).
    private var stopped = false
    private let channel: any Channel
    private let metrics: LiveMetrics?
    /// Writes one frame (and flushes); completes the promise when it is written or failed.
    private let write: (ByteBuffer, EventLoopPromise<Void>) -> Void

    /// The kernel's send buffer for a viewer socket. Linux grows it up to several MiB by default: seconds of video
    /// a slow viewer would see late. This is ample for 10 fps of 50 KB frames across a 100 ms round trip, and keeps
    /// what a slow viewer sees close to now (the newest frame waits here, not behind old ones in the kernel).
    static let socketSendBuffer: Int32 = 256 * 1024

    init(channel: any Channel, metrics: LiveMetrics?, write: @escaping (ByteBuffer, EventLoopPromise<Void>) -> Void) {
        self.channel = channel
        self.metrics = metrics
        self.write = write
        channel.setOption(ChannelOptions.socketOption(.so_sndbuf), value: ChannelOptions.Types.SocketOption.Value(Self.socketSendBuffer))
            .whenFailure { _ in }  // not a socket (tests)
    }

    /// A new frame for this viewer (on the event loop).
    func offer(_ frame: ByteBuffer) {
        guard channel.isActive, !stopped else { return }
        let offer = slot.offer(frame, writable: channel.isWritable)
        if offer.dropped { metrics?.droppedForSlowViewer() }
        if let send = offer.send { start(send) }
    }

    /// The channel became writable again: the waiting frame goes out.
    func writabilityChanged() {
        guard !stopped else { return }
        if let next = slot.next(writable: channel.isWritable) { start(next) }
    }

    /// Our close frame is going out: the waiting frame is dropped, and nothing follows it (RFC 6455 5.5.1).
    func stop() {
        stopped = true
        slot = FrameSlot()
    }

    private func start(_ frame: ByteBuffer) {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            if case .success = result { metrics?.sent() }
            guard channel.isActive, !stopped else { return }
            if let next = slot.written(writable: channel.isWritable) { start(next) }
        }
        write(frame, promise)
    }
}
