public import GatehouseProtocol
public import Logging
import Synchronization

/// The device side of the Gatehouse protocol: one WebSocket connection to a gateway, kept alive.
///
/// ```swift
/// var configuration = DeviceClientConfiguration(url: "ws://127.0.0.1:8080/v1/connect", token: token)
/// configuration.hello = DeviceHello(kind: "sensor", model: "S1", firmware: "1.0", capabilities: nil)
/// let client = DeviceClient(configuration: configuration, logger: logger) { command in
///     .ok(data: ["received": .string(command.name)])
/// }
/// try await withThrowingTaskGroup(of: Void.self) { group in
///     group.addTask { try await client.run() }
///     let outcome = try await client.send(.telemetry(data: ["temperature": 21.5], ts: nil, qos: nil))
///     ...
/// }
/// ```
///
/// ``run()`` connects, reads the `welcome`, answers commands and reconnects with backoff until its
/// task is cancelled or the gateway closes with a final code (see ``ReconnectPolicy``).
/// Acknowledged messages get a `seq` that is never reused; those without an answer are written again,
/// in order, after a reconnect, so the gateway may see a duplicate but never loses one.
///
/// A client holds no thread: connections run on the shared NIO event loops, so thousands of clients
/// fit in one process.
public final class DeviceClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: DeviceClientConfiguration
    /// Connection events; buffers the newest 64 when nobody reads them. Finishes when ``run()`` returns.
    public let events: AsyncStream<DeviceEvent>

    let logger: Logger
    let commandHandler: DeviceCommandHandler?
    let desiredHandler: DeviceDesiredHandler?
    /// `desired` frames for ``desiredHandler``: only the newest waits, since each carries the whole delta.
    let desiredUpdates: AsyncStream<DesiredUpdate>
    let desiredSink: AsyncStream<DesiredUpdate>.Continuation
    /// The connection `sleep(for:)` closes and when the client wakes.
    let sleepControl = Mutex(SleepControl())
    let liveHandler: LiveStreamHandler?
    /// The live rate the gateway asked for, while it wants frames.
    let liveState = Mutex<Double?>(nil)
    let state: Mutex<DeliveryState>
    let eventSink: AsyncStream<DeviceEvent>.Continuation

    /// Creates a client; nothing happens until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: Where and how to connect.
    ///   - logger: Logger for connection events (connects and disconnects at `info`, details at `debug`).
    ///   - commandHandler: Answers commands; without one, every command is answered with error `unsupported`.
    ///   - desiredHandler: Gets the pending delta of the desired state (PROTOCOL.md 7) after each connect and
    ///     each change; without one, `desired` frames are ignored.
    ///   - liveHandler: Starts and stops a camera's live stream (PROTOCOL.md §8); without one, `live` messages are ignored.
    public init(
        configuration: DeviceClientConfiguration,
        logger: Logger,
        commandHandler: DeviceCommandHandler? = nil,
        desiredHandler: DeviceDesiredHandler? = nil,
        liveHandler: LiveStreamHandler? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.commandHandler = commandHandler
        self.desiredHandler = desiredHandler
        (self.desiredUpdates, self.desiredSink) = AsyncStream.makeStream(of: DesiredUpdate.self, bufferingPolicy: .bufferingNewest(1))
        self.liveHandler = liveHandler
        self.state = Mutex(DeliveryState(window: configuration.window, hello: configuration.hello))
        (self.events, self.eventSink) = AsyncStream.makeStream(of: DeviceEvent.self, bufferingPolicy: .bufferingNewest(64))
    }

    /// A snapshot of the client's counters.
    public var stats: DeviceClientStats {
        self.state.withLock { $0.stats }
    }

    /// The current connection's `welcome`, or nil while disconnected.
    public var welcome: DeviceWelcome? {
        self.state.withLock { $0.welcome }
    }

    /// Sends a message and, when `acknowledged`, waits for the gateway's answer.
    ///
    /// Acknowledged messages first wait for room in the window; while disconnected they wait for the
    /// next connection. Fire-and-forget messages (`acknowledged: false`) carry no `seq`, are written
    /// only on a live connection (else ``DeviceClientError/Code/notConnected``) and return ``SendOutcome/written``.
    public func send(_ body: DeviceMessageBody, acknowledged: Bool = true) async throws -> SendOutcome {
        if acknowledged {
            return try await self.enqueue(body).outcome()
        }
        let text = DeviceMessage(seq: nil, body: body).encodedString()
        if let limit = self.welcome?.maxMessageBytes, text.utf8.count > limit {
            throw DeviceClientError(
                code: .messageTooBig,
                message: "message of \(text.utf8.count) bytes exceeds the gateway's max_message_bytes \(limit); send less data per message"
            )
        }
        try await self.write(.text(text))
        return .written
    }

    /// Puts an acknowledged message into the window and returns as soon as it has its `seq`,
    /// without waiting for the gateway's answer; await ``PendingDelivery/outcome()`` for that.
    ///
    /// Waits while the window is full. Messages enter the window, and go on the wire, in call order.
    public func enqueue(_ body: DeviceMessageBody) async throws -> PendingDelivery {
        let id = self.state.withLock { $0.makeID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PendingDelivery, any Error>) in
                self.state.withLock {
                    $0.enqueue(id: id, body: body, continuation: continuation, isCancelled: Task.isCancelled)
                }.perform()
            }
        } onCancel: {
            self.state.withLock { $0.cancelWaiting(id: id) }.perform()
        }
    }

    /// Sends a binary media frame (PROTOCOL 3.3), e.g. a camera snapshot.
    ///
    /// Media frames carry no `seq` and are not acknowledged; this returns once the frame is written.
    /// With `id` naming a pending command, the gateway completes that command from the frame.
    /// Throws ``DeviceClientError/Code/notConnected`` while disconnected.
    public func sendMedia(
        stream: String,
        contentType: String = "application/octet-stream",
        id: CommandID? = nil,
        payload: [UInt8]
    ) async throws {
        let header = MediaHeader(stream: stream, contentType: contentType, id: id)
        try await self.write(.binary(MediaFrame.encode(header: header, payload: payload)))
    }

    /// Waits until every acknowledged message sent so far has been answered (the window is empty).
    public func waitUntilAcknowledged() async throws {
        let id = self.state.withLock { $0.makeID() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                self.state.withLock {
                    $0.waitIdle(id: id, continuation: continuation, isCancelled: Task.isCancelled)
                }.perform()
            }
        } onCancel: {
            self.state.withLock { $0.cancelIdle(id: id) }.perform()
        }
    }

    /// Writes one frame on the live connection and waits until it is written.
    private func write(_ frame: OutboundWrite.Frame) async throws {
        let id = self.state.withLock { $0.makeID() }
        // Not cancellable once queued: the writer owns it, and resumes it when written or when the connection ends.
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            self.state.withLock {
                $0.sendOneShot(id: id, frame: frame, continuation: continuation, isCancelled: Task.isCancelled)
            }.perform()
        }
    }
}
