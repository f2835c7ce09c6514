import GatehouseDevice

/// A room thermostat: the temperature climbs toward the setpoint while heating and falls toward the
/// ambient temperature otherwise, with a hysteresis band around the setpoint. Setpoint and mode come from
/// commands or from the desired state (PROTOCOL.md 7, declared in `capabilities.state`); either way the new
/// values are reported as state, which empties the gateway's delta.
final class ThermostatSim: SimulatedDevice {
    let id: String
    let client: DeviceClient
    private let model: Shared<Model>
    /// Wakes the state publisher after a command or the desired state changed setpoint or mode.
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

    struct Model {
        var temperature = Double.random(in: 17...21)
        var setpoint = 21.0
        var mode = "auto"
        var heating = false
        let ambient = Double.random(in: 12...16)

        /// Advances the room by `seconds`.
        mutating func step(seconds: Double) {
            if self.heating {
                self.temperature += 0.08 * seconds
            } else {
                self.temperature -= 0.01 * (self.temperature - self.ambient) * seconds
            }
            self.temperature += Double.random(in: -0.02...0.02)
            let band = 0.3
            if self.mode == "off" {
                self.heating = false
            } else if self.temperature < self.setpoint - band {
                self.heating = true
            } else if self.temperature > self.setpoint + band {
                self.heating = false
            }
        }

        var telemetry: JSONObject {
            JSONObject([
                ("temperature", .rounded(self.temperature)),
                ("setpoint", .rounded(self.setpoint, places: 1)),
                ("heating", .bool(self.heating)),
                ("mode", .string(self.mode)),
            ])
        }

        var state: JSONObject {
            JSONObject([("setpoint", .rounded(self.setpoint, places: 1)), ("mode", .string(self.mode))])
        }
    }

    static let modes: [String] = ["heat", "off", "auto"]

    static let hello = DeviceHello(
        kind: DeviceKind.thermostat,
        model: "Gatehouse SimTherm 2",
        firmware: "2.4.1",
        capabilities: JSONObject([
            (
                "commands",
                .object(JSONObject([
                    ("set_setpoint", ["params": ["celsius": ["type": "number", "minimum": 5, "maximum": 35]]]),
                    ("set_mode", ["params": ["mode": ["type": "string", "enum": ["heat", "off", "auto"]]]]),
                ]))
            ),
            (
                "state",
                .object(JSONObject([
                    ("setpoint", ["type": "number", "minimum": 5, "maximum": 35]),
                    ("mode", ["type": "string", "enum": .array(modes.map(JSONValue.string))]),
                ]))
            ),
            (
                "telemetry",
                .object(JSONObject([
                    ("temperature", ["unit": "°C"]),
                    ("setpoint", ["unit": "°C"]),
                    ("heating", .object(JSONObject())),
                ]))
            ),
        ])
    )

    init(id: String, token: String, settings: SimSettings) {
        self.id = id
        let model = Shared(Model())
        self.model = model
        (self.changes, self.changed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let changed = self.changed
        self.client = DeviceClient(
            configuration: settings.clientConfiguration(token: token, hello: Self.hello),
            logger: settings.logger(device: id),
            commandHandler: { command in ThermostatSim.handle(command, model: model, changed: changed) },
            desiredHandler: { update in ThermostatSim.apply(update, model: model, changed: changed) }
        )
    }

    /// Takes what it can of the desired state; the state loop then reports the result.
    private static func apply(_ update: DesiredUpdate, model: Shared<Model>, changed: AsyncStream<Void>.Continuation) {
        let setpoint = update.delta["setpoint"]?.numberValue?.doubleValue
        let mode = update.delta["mode"]?.stringValue
        model.withLock { model in
            if let setpoint, (5...35).contains(setpoint) { model.setpoint = setpoint }
            if let mode, modes.contains(mode) { model.mode = mode }
        }
        changed.yield()
    }

    private static func handle(_ command: DeviceCommand, model: Shared<Model>, changed: AsyncStream<Void>.Continuation) -> CommandReply {
        let reply: CommandReply
        switch command.name {
        case "set_setpoint":
            guard let celsius = command.params["celsius"]?.numberValue?.doubleValue, (5...35).contains(celsius) else {
                return .error(code: "bad_params", message: "celsius must be a number from 5 to 35")
            }
            reply = model.withLock { model in
                model.setpoint = celsius
                return .ok(data: .object(model.state))
            }
        case "set_mode":
            guard let mode = command.params["mode"]?.stringValue, modes.contains(mode) else {
                return .error(code: "bad_params", message: "mode must be heat, off or auto")
            }
            reply = model.withLock { model in
                model.mode = mode
                return .ok(data: .object(model.state))
            }
        default:
            return .error(code: "unknown_command", message: "a thermostat accepts set_setpoint and set_mode")
        }
        changed.yield()
        return reply
    }

    func produce(settings: SimSettings) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Reported state: once at start, then after every change a command makes.
            group.addTask {
                _ = try await self.client.enqueue(.state(data: self.model.withLock { $0.state }))
                for await _ in self.changes {
                    _ = try await self.client.enqueue(.state(data: self.model.withLock { $0.state }))
                }
            }
            group.addTask {
                try await self.telemetryLoop(settings: settings)
            }
            // The telemetry budget decides when this device is done.
            try await group.next()
            group.cancelAll()
        }
    }

    private func telemetryLoop(settings: SimSettings) async throws {
        var pacer = Pacer(interval: settings.interval)
        var last = ContinuousClock.now
        var count = 0
        while settings.messages.map({ count < $0 }) ?? true {
            try await pacer.wait(interval: settings.interval)
            let now = ContinuousClock.now
            let elapsed = now - last
            last = now
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let data = self.model.withLock { model in
                model.step(seconds: seconds)
                return model.telemetry
            }
            try await self.sendTelemetry(data, settings: settings)
            count += 1
        }
    }
}
