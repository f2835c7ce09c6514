import Glibc
import Logging
import NIOCore

/// Pauses accepting for a while after `accept` failed for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM): the connection stays in the listening socket's backlog, which stays readable, and the listener's loop
/// went round at full speed (a whole core) until a descriptor was free.
///
/// Why not NIO's `AcceptBackoffHandler`: it holds back the next `read`, but when the first `accept` of a read fails
/// the server channel still counts a read as pending and stays registered for readability, so the loop still spun
/// (NIO 2.101). Turning `autoRead` off unregisters it; turning it back on after the pause accepts again.
final class AcceptPause: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel

    /// How long accepting pauses after such a failure.
    static let pause: TimeAmount = .milliseconds(250)
    /// The failures worth a pause; any other is passed on.
    private static let recoverable: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    private let logger: Logger
    private var paused = false
    private var lastLogged: NIODeadline?

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, Self.recoverable.contains(error.errnoCode) else {
            return context.fireErrorCaught(error)
        }
        let now = NIODeadline.now()
        if lastLogged.map({ now - $0 >= .minutes(1) }) ?? true {
            lastLogged = now
            logger.warning("cannot accept connections: \(error); accepting pauses \(Self.pause) at each such failure")
        }
        guard !paused, let options = context.channel.syncOptions else { return }
        paused = true
        try? options.setOption(ChannelOptions.autoRead, value: false)
        let channel = context.channel
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.pause) { [self] in
            paused = false
            try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        }
    }
}
