import GatehouseDevice
import Logging

/// All simulated devices of one run, started together and summed up at the end.
struct Fleet: Sendable {
    let devices: [any SimulatedDevice]
    let settings: SimSettings

    init(prefix: String, thermostats: Int, cameras: Int, sensors: Int, keyFile: String, settings: SimSettings) throws {
        let key = try DeviceCredentials.fleetKey(keyFile: keyFile)
        var devices: [any SimulatedDevice] = []
        for index in stride(from: 1, through: thermostats, by: 1) {
            let id = "\(prefix)-thermo-\(index)"
            let token = try DeviceCredentials.mint(device: id, kind: DeviceKind.thermostat, key: key)
            devices.append(ThermostatSim(id: id, token: token, settings: settings))
        }
        for index in stride(from: 1, through: cameras, by: 1) {
            let id = "\(prefix)-cam-\(index)"
            let token = try DeviceCredentials.mint(device: id, kind: DeviceKind.camera, key: key)
            devices.append(CameraSim(id: id, token: token, settings: settings))
        }
        for index in stride(from: 1, through: sensors, by: 1) {
            let id = "\(prefix)-sensor-\(index)"
            let token = try DeviceCredentials.mint(device: id, kind: DeviceKind.sensor, key: key)
            devices.append(SensorSim(id: id, token: token, settings: settings))
        }
        self.devices = devices
        self.settings = settings
    }

    /// Runs every device until they finish their message budget, `duration` passes, or SIGINT/SIGTERM.
    func run(duration: Duration?) async -> Summary {
        let clock = ContinuousClock()
        let start = clock.now
        var summary = Summary()
        summary.devices = self.devices.count

        enum Result: Sendable {
            case device(String, DeviceEnd)
            case stop(String)
        }
        await withTaskGroup(of: Result.self) { group in
            for device in self.devices {
                group.addTask { .device(device.id, await device.run(settings: self.settings)) }
            }
            group.addTask {
                if let duration {
                    try? await Task.sleep(for: duration)
                    return .stop(Task.isCancelled ? "cancelled" : "duration")
                }
                return .stop(await ShutdownSignal.wait())
            }
            if duration != nil {
                // The signal still stops a timed run early.
                group.addTask { .stop(await ShutdownSignal.wait()) }
            }
            var running = self.devices.count
            var stopping = false
            while running > 0, let result = await group.next() {
                switch result {
                case .device(let id, let end):
                    running -= 1
                    switch end {
                    case .finished: summary.finished += 1
                    case .failed(let message):
                        summary.failed += 1
                        self.settings.logger.error("Device stopped", metadata: ["device": "\(id)", "error": "\(message)"])
                    case .cancelled: break
                    }
                case .stop(let why):
                    guard !stopping else { continue }
                    stopping = true
                    self.settings.logger.notice("Stopping devices", metadata: ["why": "\(why)"])
                    // Ends each device's tasks; clients close their connections with 1000.
                    group.cancelAll()
                }
            }
            group.cancelAll()
        }
        summary.duration = clock.now - start
        for device in self.devices {
            summary.stats.add(device.client.stats)
        }
        return summary
    }
}
