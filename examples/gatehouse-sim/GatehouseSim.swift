import ArgumentParser
import GatehouseDevice
import Logging

/// `gatehouse-sim`: a fleet of simulated thermostats, cameras and sensors connected to a gateway.
@main
struct GatehouseSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse-sim",
        abstract: "Simulate Gatehouse devices (thermostats, cameras, sensors) against a gateway.",
        discussion: """
            Each device mints its own token from the fleet key file, connects to the gateway, sends
            telemetry and answers commands. Stop with Ctrl-C or SIGTERM; a summary is printed on exit.
            """
    )

    @Option(help: "Gateway WebSocket endpoint.")
    var url = "ws://127.0.0.1:8080/v1/connect"

    @Option(name: .customLong("key-file"), help: "Fleet key file (the gateway's auth.key_file), used to mint device tokens.")
    var keyFile: String

    @Option(help: "Number of simulated thermostats.")
    var thermostats = 2

    @Option(help: "Number of simulated cameras.")
    var cameras = 1

    @Option(help: "Number of simulated sensors.")
    var sensors = 2

    @Option(help: "Telemetry messages per device per second; 0 sends as fast as the window allows.")
    var rate: Double = 1

    @Option(help: "Seconds to run; 0 runs until Ctrl-C or SIGTERM.")
    var duration: Double = 0

    @Option(help: "Device id prefix: ids are <prefix>-thermo-1, <prefix>-cam-1, <prefix>-sensor-1, ...")
    var prefix = "sim"

    @Option(help: "Telemetry QoS override (0 or 1); by default the gateway's configured QoS applies.")
    var qos: Int?

    @Flag(help: "Offer permessage-deflate compression.")
    var compression = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Option(help: "Telemetry messages per device, then stop once all are acknowledged (for benchmarks).")
    var messages: Int?

    @Option(help: "Unacknowledged messages each device may have in flight.")
    var window = 64

    @Option(name: .customLong("live-max-fps"), help: "The max_fps cameras declare for live view; they never stream faster.")
    var liveMaxFPS: Double = 15

    @Flag(name: .customLong("token-in-query"), help: "Send the token as ?token= instead of an Authorization header.")
    var tokenInQuery = false

    @Option(help: "Seconds each device sleeps (disconnected, like a battery device) after every --awake period; 0 never sleeps.")
    var sleep: Double = 0

    @Option(help: "Seconds each device stays connected between sleeps (with --sleep).")
    var awake: Double = 10

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "warning"

    func validate() throws {
        guard self.thermostats >= 0, self.cameras >= 0, self.sensors >= 0 else {
            throw ValidationError("device counts cannot be negative")
        }
        guard self.rate >= 0, self.rate.isFinite else { throw ValidationError("--rate must be 0 or more") }
        guard self.duration >= 0, self.duration.isFinite else { throw ValidationError("--duration must be 0 or more") }
        if let qos = self.qos, qos != 0, qos != 1 { throw ValidationError("--qos must be 0 or 1") }
        if let messages = self.messages, messages < 0 { throw ValidationError("--messages must be 0 or more") }
        guard self.sleep >= 0, self.sleep.isFinite else { throw ValidationError("--sleep must be 0 or more") }
        guard self.awake > 0, self.awake.isFinite else { throw ValidationError("--awake must be more than 0") }
        guard self.liveMaxFPS > 0, self.liveMaxFPS.isFinite else { throw ValidationError("--live-max-fps must be above 0") }
        guard self.window >= 1 else { throw ValidationError("--window must be at least 1") }
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: self.logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let settings = SimSettings(
            url: self.url,
            rate: self.rate,
            messages: self.messages,
            qos: self.qos,
            compression: self.compression,
            window: self.window,
            tokenInQuery: self.tokenInQuery,
            sleep: self.sleep > 0 ? .milliseconds(Int64(self.sleep * 1000)) : nil,
            awake: .milliseconds(Int64(self.awake * 1000)),
            liveMaxFPS: self.liveMaxFPS,
            logger: Logger(label: "gatehouse-sim")
        )
        let fleet = try Fleet(
            prefix: self.prefix,
            thermostats: self.thermostats,
            cameras: self.cameras,
            sensors: self.sensors,
            keyFile: self.keyFile,
            settings: settings
        )
        let summary = await fleet.run(duration: self.duration > 0 ? .milliseconds(Int64(self.duration * 1000)) : nil)
        print(self.json ? summary.json : summary.text)
        if summary.failed > 0 {
            throw ExitCode(1)
        }
    }
}
