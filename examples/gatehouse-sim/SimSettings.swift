import GatehouseDevice
import Logging

/// What every simulated device shares: pacing, limits and how to reach the gateway.
struct SimSettings: Sendable {
    var url: String
    /// Telemetry messages per device per second; 0 sends as fast as the window allows.
    var rate: Double
    /// Telemetry messages per device before it stops; nil runs until cancelled.
    var messages: Int?
    /// Overrides the gateway's telemetry QoS when set.
    var qos: Int?
    var compression: Bool
    var window: Int
    var tokenInQuery: Bool
    /// Devices sleep this long (disconnected) after each `awake` period; nil keeps them connected.
    var sleep: Duration? = nil
    /// How long devices stay connected between sleeps.
    var awake: Duration = .seconds(10)
    /// Cameras declare this `capabilities.live.max_fps` and never stream faster.
    var liveMaxFPS: Double = 15
    var logger: Logger

    /// The interval between telemetry messages, or nil for "as fast as possible".
    var interval: Duration? {
        self.rate > 0 ? .milliseconds(Int64((1000 / self.rate).rounded())) : nil
    }

    /// Random events only make sense when pacing like a real device, not in a benchmark.
    var randomEvents: Bool { self.messages == nil && self.rate > 0 }

    func clientConfiguration(token: String, hello: DeviceHello) -> DeviceClientConfiguration {
        var configuration = DeviceClientConfiguration(url: self.url, token: token)
        configuration.tokenPlacement = self.tokenInQuery ? .queryParameter : .authorizationHeader
        configuration.compression = self.compression
        configuration.window = self.window
        configuration.hello = hello
        return configuration
    }

    func logger(device: String) -> Logger {
        var logger = self.logger
        logger[metadataKey: "device"] = "\(device)"
        return logger
    }
}
