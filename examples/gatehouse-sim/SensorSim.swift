import GatehouseDevice

/// An air-quality sensor: temperature, humidity and CO₂ as bounded random walks; `set_interval`, or the
/// desired state's `interval_s` (PROTOCOL.md 7), changes how often it reports.
final class SensorSim: SimulatedDevice {
    let id: String
    let client: DeviceClient
    /// The reporting interval set by `set_interval`; nil keeps the fleet's `--rate`.
    private let interval: Shared<Duration?>

    static let hello = DeviceHello(
        kind: DeviceKind.sensor,
        model: "Gatehouse SimAir 3",
        firmware: "3.0.2",
        capabilities: JSONObject([
            (
                "commands",
                .object(JSONObject([
                    ("set_interval", ["params": ["seconds": ["type": "number", "minimum": 1, "maximum": 3600]]])
                ]))
            ),
            ("state", .object(JSONObject([("interval_s", ["type": "number", "minimum": 1, "maximum": 3600])]))),
            (
                "telemetry",
                .object(JSONObject([
                    ("temperature", ["unit": "°C"]),
                    ("humidity", ["unit": "%"]),
                    ("co2", ["unit": "ppm"]),
                ]))
            ),
        ])
    )

    init(id: String, token: String, settings: SimSettings) {
        self.id = id
        let interval = Shared<Duration?>(nil)
        self.interval = interval
        let reports = Shared<DeviceClient?>(nil)
        self.client = DeviceClient(
            configuration: settings.clientConfiguration(token: token, hello: Self.hello),
            logger: settings.logger(device: id),
            commandHandler: { command in SensorSim.handle(command, interval: interval) },
            desiredHandler: { update in
                guard let seconds = update.delta["interval_s"]?.numberValue?.doubleValue, (1...3600).contains(seconds) else { return }
                interval.withLock { $0 = .milliseconds(Int64(seconds * 1000)) }
                _ = try? await reports.withLock { $0 }?.reportState(["interval_s": .number(JSONNumber(seconds) ?? JSONNumber(1))])
            }
        )
        reports.withLock { $0 = self.client }
    }

    private static func handle(_ command: DeviceCommand, interval: Shared<Duration?>) -> CommandReply {
            guard command.name == "set_interval" else {
                return .error(code: "unknown_command", message: "a sensor accepts set_interval")
            }
            guard let seconds = command.params["seconds"]?.numberValue?.doubleValue, (1...3600).contains(seconds) else {
                return .error(code: "bad_params", message: "seconds must be a number from 1 to 3600")
            }
            interval.withLock { $0 = .milliseconds(Int64(seconds * 1000)) }
            return .ok(data: ["interval_s": .number(JSONNumber(seconds) ?? JSONNumber(1))])
    }

    func produce(settings: SimSettings) async throws {
        var pacer = Pacer(interval: settings.interval)
        var temperature = Double.random(in: 19...23)
        var humidity = Double.random(in: 35...55)
        var co2 = Double.random(in: 450...700)
        var count = 0
        while settings.messages.map({ count < $0 }) ?? true {
            try await pacer.wait(interval: self.interval.withLock { $0 } ?? settings.interval)
            temperature = min(35, max(5, temperature + Double.random(in: -0.1...0.1)))
            humidity = min(95, max(10, humidity + Double.random(in: -0.5...0.5)))
            co2 = min(5000, max(400, co2 + Double.random(in: -15...15)))
            let data = JSONObject([
                ("temperature", .rounded(temperature)),
                ("humidity", .rounded(humidity, places: 1)),
                ("co2", .rounded(co2, places: 0)),
            ])
            try await self.sendTelemetry(data, settings: settings)
            count += 1
        }
    }
}
