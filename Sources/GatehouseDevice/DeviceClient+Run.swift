import GatehouseProtocol
import HummingbirdWSClient
import Logging
import Synchronization

extension DeviceClient {
    /// Connects, and reconnects with backoff, until the calling task is cancelled or the gateway closes
    /// the connection with a final code.
    ///
    /// Returns normally on cancellation (after a clean close). Throws ``DeviceClientError`` with code
    /// ``DeviceClientError/Code/closedByGateway(_:)`` or ``DeviceClientError/Code/upgradeRefused`` when
    /// the ``ReconnectPolicy`` says to stop, ``DeviceClientError/Code/invalidURL`` for a bad URL, and
    /// ``DeviceClientError/Code/alreadyRunning`` when called twice. When it returns, every message still
    /// waiting fails with ``DeviceClientError/Code/stopped``.
    public func run() async throws {
        let started = self.state.withLock { state -> Bool in
            guard state.lifecycle == .idle else { return false }
            state.lifecycle = .running
            return true
        }
        guard started else {
            throw DeviceClientError(code: .alreadyRunning, message: "run() can be called once per DeviceClient; create a new client to run again")
        }
        defer {
            self.state.withLock { $0.stop() }.perform()
            self.eventSink.finish()
            self.desiredSink.finish()
        }
        let (commands, commandSink) = AsyncStream.makeStream(of: DeviceCommand.self)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                defer {
                    commandSink.finish()
                    self.desiredSink.finish()
                }
                try await self.connectLoop(commands: commandSink)
            }
            group.addTask { await self.deliverDesired(self.desiredUpdates) }
            // Commands are answered in tasks of this group, not of a connection, so a handler that
            // is still busy when the connection drops can answer on the next one.
            for await command in commands {
                group.addTask { await self.answer(command) }
            }
        }
    }

    private func connectLoop(commands: AsyncStream<DeviceCommand>.Continuation) async throws {
        var attempt = 0
        while !Task.isCancelled {
            // A sleep asked for between two connections.
            if let wakeAt = self.takeWakeTime() {
                do {
                    try await Task.sleep(until: wakeAt)
                } catch {
                    return
                }
            }
            let end = await self.connectOnce(commands: commands)
            if Task.isCancelled { return }
            if let wakeAt = self.takeWakeTime() {
                // Asleep by request (`sleep(for:)`): not a failure, no backoff.
                attempt = 0
                self.eventSink.yield(.disconnected(closeCode: end.closeCode, reason: "sleeping", reconnectIn: wakeAt - .now))
                self.logger.info("Sleeping", metadata: ["wake_in": "\(wakeAt - .now)"])
                do {
                    try await Task.sleep(until: wakeAt)
                } catch {
                    return
                }
                continue
            }
            if end.welcomed { attempt = 0 }
            if let closeCode = end.closeCode {
                self.state.withLock { $0.stats.lastCloseCode = closeCode }
            }
            if let error = self.finalError(for: end) {
                self.logger.warning("Gateway connection ended for good", metadata: ["error": "\(error)"])
                self.eventSink.yield(.disconnected(closeCode: end.closeCode, reason: end.reason, reconnectIn: nil))
                throw error
            }
            let delay = self.configuration.backoff.delay(attempt: attempt)
            attempt += 1
            self.eventSink.yield(.disconnected(closeCode: end.closeCode, reason: end.reason, reconnectIn: delay))
            self.logger.log(
                level: end.welcomed ? .info : .debug,
                "Gateway connection ended, reconnecting",
                metadata: [
                    "close_code": "\(end.closeCode.map { "\($0)" } ?? "none")",
                    "reason": "\(end.reason)",
                    "retry_in": "\(delay)",
                ]
            )
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }

    /// The error that ends ``run()`` after this connection, or nil to reconnect.
    private func finalError(for end: ConnectionEnd) -> DeviceClientError? {
        let policy = self.configuration.reconnectPolicy
        if end.invalidURL {
            return DeviceClientError(code: .invalidURL, message: "cannot connect to '\(self.configuration.url)': use ws://host:port/v1/connect or wss://…")
        }
        if end.upgradeRefused, policy.stopOnUpgradeRefused {
            return DeviceClientError(
                code: .upgradeRefused,
                message: "the gateway refused the WebSocket upgrade: check the token (401), the path /v1/connect (404) and the subprotocol (400)"
            )
        }
        if let code = end.closeCode, policy.stopOnCloseCodes.contains(code) {
            let why =
                switch code {
                case 4000: "another connection with the same device id replaced this one"
                case 4001: "the device token expired; connect again with a fresh token"
                case 1008: "the gateway closed for a policy reason (revoked token, kicked, too many bad messages)"
                default: "the gateway closed the connection"
                }
            return DeviceClientError(code: .closedByGateway(code), message: "\(why) (close code \(code)\(end.reason.isEmpty ? "" : ": \(end.reason)"))")
        }
        return nil
    }

    /// Answers one command and counts it.
    private func answer(_ command: DeviceCommand) async {
        let reply = await self.commandHandler?(command) ?? .error(code: "unsupported", message: "this device does not accept commands")
        do {
            switch reply {
            case .ok(let data):
                _ = try await self.enqueue(.response(id: command.id, status: .ok, data: data, error: nil))
            case .error(let code, let message):
                let error = JSONObject([("code", .string(code)), ("message", .string(message))])
                _ = try await self.enqueue(.response(id: command.id, status: .error, data: .null, error: error))
            case .media(let stream, let contentType, let payload):
                try await self.sendMedia(stream: stream, contentType: contentType, id: command.id, payload: payload)
            }
            self.state.withLock { $0.stats.commandsAnswered += 1 }
        } catch {
            self.logger.debug("Could not answer command", metadata: ["command": "\(command.name)", "id": "\(command.id)", "error": "\(error)"])
        }
    }
}

/// How one connection attempt ended.
struct ConnectionEnd {
    /// The close code the gateway sent; 1006 when an established connection was lost without one;
    /// nil when no WebSocket connection was made.
    var closeCode: UInt16?
    var reason: String
    var welcomed: Bool
    var upgradeRefused = false
    var invalidURL = false
}
