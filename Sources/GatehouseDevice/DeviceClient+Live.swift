import GatehouseProtocol
import Logging
import Synchronization

extension DeviceClient {
    /// The rate the gateway asked for, while it wants live frames; nil otherwise.
    public var liveFPS: Double? {
        self.liveState.withLock { $0 }
    }

    /// Sends one live frame: a whole JPEG image as a binary media frame with `stream` `live` (PROTOCOL.md §8).
    ///
    /// Returns once the frame is written, so a loop that sends frames is paced by the connection. Throws
    /// ``DeviceClientError/Code/notConnected`` while disconnected.
    public func sendLiveFrame(jpeg: [UInt8]) async throws {
        try await self.sendMedia(stream: LiveControl.stream, contentType: "image/jpeg", payload: jpeg)
    }

    /// A `live` message from the gateway.
    func handleLive(_ control: LiveControl) {
        switch control {
        case .start(let fps):
            self.liveState.withLock { $0 = fps }
            self.logger.debug("Live stream requested", metadata: ["fps": "\(fps)"])
            self.liveHandler?.start(fps)
        case .stop:
            let wasLive = self.liveState.withLock { state -> Bool in
                defer { state = nil }
                return state != nil
            }
            if wasLive { self.liveHandler?.stop() }
        }
    }

    /// The connection ended: a stream in progress stops (the gateway starts it again after a reconnect).
    func liveConnectionEnded() {
        self.handleLive(.stop)
    }
}
