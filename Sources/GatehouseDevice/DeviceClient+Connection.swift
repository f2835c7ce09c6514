import GatehouseProtocol
import HTTPTypes
import HummingbirdWSClient
import HummingbirdWSCompression
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

extension DeviceClient {
    /// Makes one connection and runs it until it ends.
    func connectOnce(commands: AsyncStream<DeviceCommand>.Continuation) async -> ConnectionEnd {
        let id = self.state.withLock { state -> UInt64 in
            let id = state.makeID()
            state.connectionStarted(id: id)
            return id
        }
        let progress = ConnectionProgress()
        self.noteConnection(progress)
        defer { self.noteConnection(nil) }
        var end = ConnectionEnd(closeCode: nil, reason: "", welcomed: false)
        let url = self.connectURL
        let configuration = self.webSocketConfiguration
        do {
            // The connection runs in its own task so that cancelling run() does not tear it down
            // mid-frame: cancellation asks it to close with 1000 and wait for the gateway's reply, which
            // lets the gateway tell a device that left (reason `disconnected`) from one that was lost.
            let connection = Task {
                try await WebSocketClient.connect(url: url, configuration: configuration, logger: self.logger) { inbound, outbound, _ in
                    progress.upgraded()
                    try await self.runConnection(id: id, inbound: inbound, outbound: outbound, commands: commands, progress: progress)
                }
            }
            progress.setTask(connection)
            let closeFrame = try await withTaskCancellationHandler {
                try await connection.value
            } onCancel: {
                progress.requestClose()
            }
            if let closeFrame {
                end.closeCode = UInt16(webSocketErrorCode: closeFrame.closeCode)
                end.reason = closeFrame.reason ?? ""
            } else {
                end.closeCode = 1006
                end.reason = "connection lost"
            }
        } catch let error as WebSocketClientError where error == .webSocketUpgradeFailed {
            end.upgradeRefused = true
            end.reason = "upgrade refused"
        } catch let error as WebSocketClientError where error == .invalidURL {
            end.invalidURL = true
            end.reason = "invalid URL"
        } catch {
            end.closeCode = progress.isUpgraded ? 1006 : nil
            end.reason = "\(error)"
        }
        end.welcomed = progress.isWelcomed
        self.state.withLock { $0.connectionEnded(id: id) }.perform()
        self.liveConnectionEnded()
        return end
    }

    /// The URL to connect to, with `?token=` when the token goes in the query.
    var connectURL: String {
        guard self.configuration.tokenPlacement == .queryParameter else { return self.configuration.url }
        let separator = self.configuration.url.contains("?") ? "&" : "?"
        // A JWT is base64url segments and dots: nothing to percent-encode.
        return self.configuration.url + separator + "token=" + self.configuration.token
    }

    var webSocketConfiguration: WebSocketClientConfiguration {
        var headers = HTTPFields()
        if self.configuration.tokenPlacement == .authorizationHeader {
            headers[.authorization] = "Bearer \(self.configuration.token)"
        }
        if self.configuration.offerSubprotocol {
            headers[.secWebSocketProtocol] = DeviceClientConfiguration.subprotocol
        }
        let extensions: [WebSocketExtensionFactory] =
            self.configuration.compression
            ? [.perMessageDeflate(maxDecompressedFrameSize: self.configuration.maxFrameSize)]
            : []
        return WebSocketClientConfiguration(
            maxFrameSize: self.configuration.maxFrameSize,
            additionalHeaders: headers,
            extensions: extensions,
            closeTimeout: self.configuration.closeTimeout,
            autoPing: self.configuration.pingInterval.map { .enabled(timePeriod: $0) } ?? .disabled,
            validateUTF8: true
        )
    }

    /// Runs an upgraded connection: a reader that always drains inbound (pings and close frames are
    /// only handled while it reads), a writer fed from the window, and the `welcome` deadline.
    private func runConnection(
        id: UInt64,
        inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter,
        commands: AsyncStream<DeviceCommand>.Continuation,
        progress: ConnectionProgress
    ) async throws {
        enum Finished: Sendable {
            case reader, writer, welcomeDeadline, closeRequested
        }
        let welcomeTimeout = self.configuration.welcomeTimeout
        let closeTimeout = self.configuration.closeTimeout
        try await withThrowingTaskGroup(of: Finished.self) { group in
            group.addTask {
                try await self.readLoop(id: id, inbound: inbound, commands: commands, progress: progress)
                return .reader
            }
            group.addTask {
                try await self.writeLoop(id: id, outbound: outbound)
                return .writer
            }
            group.addTask {
                try await Task.sleep(for: welcomeTimeout)
                guard progress.isWelcomed else {
                    throw DeviceClientError(code: .protocolViolation, message: "no welcome from the gateway within \(welcomeTimeout)")
                }
                return .welcomeDeadline
            }
            group.addTask {
                guard await progress.closeRequested() else { return .closeRequested }
                // Stop the writer first: nothing may follow the close frame.
                self.state.withLock { $0.connectionEnded(id: id) }.perform()
                // Keep reading meanwhile: the gateway's close reply ends the reader, and with it the connection.
                try await outbound.close(.normalClosure, reason: "device stopping")
                try await Task.sleep(for: closeTimeout)
                self.logger.debug("Gateway did not answer the close frame in time")
                progress.abort()
                return .closeRequested
            }
            while let finished = try await group.next() {
                switch finished {
                case .welcomeDeadline, .closeRequested, .writer:
                    // The writer only returns once the connection is detached; the reader still drains.
                    continue
                case .reader:
                    // The gateway closed the connection: stop the rest.
                    self.state.withLock { $0.connectionEnded(id: id) }.perform()
                    group.cancelAll()
                    return
                }
            }
        }
    }

    private func readLoop(
        id: UInt64,
        inbound: WebSocketInboundStream,
        commands: AsyncStream<DeviceCommand>.Continuation,
        progress: ConnectionProgress
    ) async throws {
        for try await message in inbound.messages(maxSize: self.configuration.maxFrameSize) {
            guard case .text(let text) = message else {
                self.logger.debug("Ignoring a binary message from the gateway")
                continue
            }
            if progress.isWelcomed, let control = LiveControl.parse(Array(text.utf8)) {
                self.handleLive(control)
                continue
            }
            guard let parsed = GatewayMessage.parse(Array(text.utf8)) else {
                self.logger.warning("Ignoring an unreadable message from the gateway", metadata: ["message": "\(text.prefix(200))"])
                continue
            }
            if !progress.isWelcomed {
                guard case .welcome(let device, let gateway, let session, let heartbeat, let maxBytes) = parsed else {
                    throw DeviceClientError(code: .protocolViolation, message: "the gateway's first message was not welcome")
                }
                let welcome = DeviceWelcome(device: device, gateway: gateway, session: session, heartbeatSeconds: heartbeat, maxMessageBytes: maxBytes)
                progress.welcomed()
                self.state.withLock { $0.welcomed(id: id, welcome: welcome) }.perform()
                self.logger.info("Connected to gateway", metadata: ["device": "\(device)", "gateway": "\(gateway)", "session": "\(session)"])
                self.eventSink.yield(.connected(welcome))
                continue
            }
            switch parsed {
            case .ack(let seq):
                self.state.withLock { $0.answered(seq: seq, outcome: .acked) }.perform()
            case .nack(let seq, let code, let message):
                self.logger.debug("Gateway refused a message", metadata: ["seq": "\(seq)", "code": "\(code)", "message": "\(message)"])
                self.state.withLock { $0.answered(seq: seq, outcome: .nacked(code: code, message: message)) }.perform()
            case .command(let commandID, let name, let params, let deadline):
                commands.yield(DeviceCommand(id: commandID, name: name, params: params, deadline: deadline))
            case .error(let code, let message):
                self.logger.warning("Gateway reported an error", metadata: ["code": "\(code)", "message": "\(message)"])
                self.eventSink.yield(.gatewayError(code: code, message: message))
            case .desired(let version, let data):
                self.desiredSink.yield(DesiredUpdate(version: version, delta: data))
            case .welcome:
                self.logger.debug("Ignoring a second welcome")
            }
        }
    }

    private func writeLoop(id: UInt64, outbound: WebSocketOutboundWriter) async throws {
        while let write = await self.nextWrite(id: id) {
            do {
                switch write.frame {
                case .text(let text):
                    try await outbound.write(.text(text))
                case .binary(let bytes):
                    try await outbound.writeBinaryMessage(ByteBuffer(bytes: bytes))
                }
                write.completion?.resume()
            } catch {
                write.completion?.resume(throwing: error)
                throw error
            }
        }
    }

    private func nextWrite(id: UInt64) async -> OutboundWrite? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<OutboundWrite?, Never>) in
                self.state.withLock {
                    $0.nextWrite(id: id, continuation: continuation, isCancelled: Task.isCancelled)
                }.perform()
            }
        } onCancel: {
            self.state.withLock { $0.cancelWriter(id: id) }.perform()
        }
    }
}

/// What one connection attempt reached, and the way to stop it, shared between the connection's
/// tasks and the code that started it.
final class ConnectionProgress: Sendable {
    private struct State {
        var upgraded = false
        var welcomed = false
        var closeRequested = false
        var closeWaiter: CheckedContinuation<Bool, Never>?
        var task: Task<WebSocketCloseFrame?, any Error>?
    }

    private let state = Mutex(State())

    var isUpgraded: Bool { self.state.withLock { $0.upgraded } }
    var isWelcomed: Bool { self.state.withLock { $0.welcomed } }

    func upgraded() { self.state.withLock { $0.upgraded = true } }
    func welcomed() { self.state.withLock { $0.welcomed = true } }

    func setTask(_ task: Task<WebSocketCloseFrame?, any Error>) {
        let cancelNow = self.state.withLock { state -> Bool in
            state.task = task
            return state.closeRequested && !state.upgraded
        }
        if cancelNow { task.cancel() }
    }

    /// Asks the connection to close cleanly; before the upgrade there is nothing to close, so the attempt is cancelled.
    func requestClose() {
        let (waiter, task) = self.state.withLock { state -> (CheckedContinuation<Bool, Never>?, Task<WebSocketCloseFrame?, any Error>?) in
            state.closeRequested = true
            defer { state.closeWaiter = nil }
            return (state.closeWaiter, state.upgraded ? nil : state.task)
        }
        waiter?.resume(returning: true)
        task?.cancel()
    }

    /// Gives up on a clean close.
    func abort() {
        self.state.withLock { $0.task }?.cancel()
    }

    /// Waits until a close is requested (true) or the waiting task is cancelled (false).
    func closeRequested() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer = self.state.withLock { state -> Bool? in
                    if state.closeRequested { return true }
                    if Task.isCancelled { return false }
                    state.closeWaiter = continuation
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
                defer { state.closeWaiter = nil }
                return state.closeWaiter
            }
            waiter?.resume(returning: false)
        }
    }
}
