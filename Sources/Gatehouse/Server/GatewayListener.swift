import Glibc
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The gateway's listener (`gateway.host`:`gateway.port`), in place of Hummingbird's `Server`.
///
/// Why our own: Hummingbird's server gives every accepted connection a Swift task that waits for the
/// connection's setup to finish, and passes each connection through an async sequence to get there. In a connect
/// storm that was ~18 % of the gateway's CPU per device (a task, two thread hops, a wake-up of the concurrency
/// pool; docs/benchmarks.md), for a task that has nothing to do for a device. Here a connection is set up on its
/// event loop (`GatewayChannel.setup`), and gets a task only when it has something to wait for: an HTTP request,
/// a live viewer or the status feed, a refusal to write. Hummingbird still answers every HTTP request (its router,
/// through `GatewayChannel.handleHTTP`).
///
/// Graceful shutdown as Hummingbird's: stop accepting, tell every connection to quiesce (HTTP connections close
/// after their request, those still reading it close at once; devices ignore it, `Gateway.shutDown` closes them
/// with 1001), and return once the handshakes under way and the connections' tasks have ended.
struct GatewayListener: Service {
    let channel: GatewayChannel
    let host: String
    let port: Int
    let logger: Logger
    /// Called once the socket listens.
    let onRunning: @Sendable (any Channel) async -> Void

    func run() async throws {
        let (toServe, serve) = AsyncStream<GatewayChannel.Value>.makeStream()
        let setups = Setups(serve)
        let group = MultiThreadedEventLoopGroup.singleton
        let quiescing = ServerQuiescingHelper(group: group)
        let (channel, logger) = (self.channel, self.logger)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .serverChannelInitializer { server in
                server.eventLoop.makeCompletedFuture {
                    try server.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: server))
                    try server.pipeline.syncOperations.addHandler(AcceptPause(logger: logger))
                }
            }
            .childChannelInitializer { child in
                setups.started()
                return channel.setup(channel: child, logger: logger).map { value in
                    value.upgradeResult.whenComplete { result in
                        switch result {
                        case .success(.device): break  // served by its handlers on the event loop
                        case .success: serve.yield(value)
                        case .failure(let error): logger.debug("connection ended: \(error)")
                        }
                        setups.ended()
                    }
                }.always { setup in
                    // A setup that failed has no result to wait for (NIO closes the connection).
                    if case .failure = setup { setups.ended() }
                }
            }
            .bind(host: host, port: port).get()
        server.closeFuture.whenComplete { _ in setups.stopAccepting() }
        await onRunning(server)
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withDiscardingTaskGroup { tasks in
                    for await connection in toServe {
                        tasks.addTask { await channel.handle(value: connection, logger: logger) }
                    }
                }
            } onCancel: {
                quiescing.initiateShutdown(promise: nil)
            }
        } onGracefulShutdown: {
            quiescing.initiateShutdown(promise: nil)
        }
    }

    /// Connections whose setup has not ended. The stream of connections to serve ends once the socket is closed and
    /// every setup under way has ended, so that shutdown waits for a handshake in progress (the quiescing closes
    /// those still reading their request) and no device is admitted after the gateway has closed its devices.
    private final class Setups: Sendable {
        private let state = Mutex((underWay: 0, accepting: true))
        private let stream: AsyncStream<GatewayChannel.Value>.Continuation

        init(_ stream: AsyncStream<GatewayChannel.Value>.Continuation) { self.stream = stream }

        func started() { state.withLock { $0.underWay += 1 } }

        func ended() { finishIfDone { $0.underWay -= 1 } }

        func stopAccepting() { finishIfDone { $0.accepting = false } }

        private func finishIfDone(_ change: (inout (underWay: Int, accepting: Bool)) -> Void) {
            let done = state.withLock { state in
                change(&state)
                return !state.accepting && state.underWay == 0
            }
            if done { stream.finish() }
        }
    }
}

extension GatewayListener {
    /// Hummingbird's answer to one HTTP request with `responder` (what its `Application` does): the request's
    /// context, a 500 for an error the router did not turn into a response, and the `Date` and `Server` headers.
    static func httpResponder(_ responder: RouterResponder<BasicRequestContext>, logger: Logger) -> HTTPChannelHandler.Responder {
        { request, writer, channel in
            let context = BasicRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                throw error
            } catch {
                logger.debug("request failed: \(error)")
                response = Response(status: .internalServerError)
            }
            response.headers[.date] = httpDate()
            response.headers[.server] = "gatehouse"
            do {
                try await writer.write(response: response.head, body: response.body)
            } catch is HTTPParserError {
                // Not a parser error of its own: the HTTP handler would answer one with a second response.
                throw ResponseWriteFailed()
            }
        }
    }

    /// The request turned out malformed while its response was being written.
    struct ResponseWriteFailed: Error {}

    /// Now as an HTTP date (RFC 9110 5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, with the English names
    /// whatever the locale. Written here because Hummingbird's formatter (`Date.httpHeader`) is internal.
    static func httpDate(_ now: time_t = time(nil)) -> String {
        var now = now
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
