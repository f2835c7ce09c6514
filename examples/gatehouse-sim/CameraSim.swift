import GatehouseDevice

/// A network camera: frame-rate and bitrate telemetry, random `motion` events, and `snapshot`
/// commands answered with a real JPEG as a binary media frame.
final class CameraSim: SimulatedDevice {
    let id: String
    let client: DeviceClient

    static let hello = DeviceHello(
        kind: DeviceKind.camera,
        model: "Gatehouse SimCam 1080",
        firmware: "1.9.0",
        capabilities: JSONObject([
            ("commands", .object(JSONObject([("snapshot", ["params": .object(JSONObject())])]))),
            (
                "telemetry",
                .object(JSONObject([
                    ("fps", .object(JSONObject())),
                    ("bitrate_kbps", ["unit": "kbit/s"]),
                ]))
            ),
        ])
    )

    init(id: String, token: String, settings: SimSettings) {
        self.id = id
        self.client = DeviceClient(
            configuration: settings.clientConfiguration(token: token, hello: Self.hello),
            logger: settings.logger(device: id)
        ) { command in
            switch command.name {
            case "snapshot":
                .media(stream: "snapshot", contentType: "image/jpeg", payload: SnapshotImage.jpeg)
            default:
                .error(code: "unknown_command", message: "a camera accepts snapshot")
            }
        }
    }

    func produce(settings: SimSettings) async throws {
        var pacer = Pacer(interval: settings.interval)
        var bitrate = Double.random(in: 1800...2400)
        var count = 0
        while settings.messages.map({ count < $0 }) ?? true {
            try await pacer.wait(interval: settings.interval)
            bitrate = min(4000, max(500, bitrate + Double.random(in: -120...120)))
            let fps: JSONValue = .number(JSONNumber(Int.random(in: 0..<20) == 0 ? 24 : 25))
            try await self.sendTelemetry(JSONObject([("fps", fps), ("bitrate_kbps", .rounded(bitrate, places: 0))]), settings: settings)
            count += 1
            if settings.randomEvents, Int.random(in: 0..<20) == 0 {
                let data: JSONValue = .object(JSONObject([
                    ("zone", .string(["driveway", "porch", "garden"].randomElement()!)),
                    ("confidence", .rounded(Double.random(in: 0.55...0.99))),
                ]))
                _ = try await self.client.enqueue(.event(name: "motion", data: data))
            }
        }
    }
}
