import GatehouseDevice
import Logging

/// A network camera: frame-rate and bitrate telemetry, random `motion` events, `snapshot`
/// commands answered with a real JPEG as a binary media frame, and a live stream (PROTOCOL.md §8) of
/// rendered JPEG frames while the gateway asks for one, at its rate up to the declared `max_fps`.
final class CameraSim: SimulatedDevice {
    let id: String
    let client: DeviceClient

    let liveMaxFPS: Double

    static func hello(liveMaxFPS: Double) -> DeviceHello { DeviceHello(
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
            ("live", DeviceHello.liveCapability(maxFPS: liveMaxFPS)),
        ])
    ) }

    init(id: String, token: String, settings: SimSettings) {
        self.id = id
        self.liveMaxFPS = settings.liveMaxFPS
        let logger = settings.logger(device: id)
        let live = LiveStreamHandler(
            start: { fps in logger.info("live stream requested at \(fps) fps") },
            stop: { logger.info("live stream stopped") }
        )
        self.client = DeviceClient(
            configuration: settings.clientConfiguration(token: token, hello: Self.hello(liveMaxFPS: settings.liveMaxFPS)),
            logger: logger,
            commandHandler: { command in
                switch command.name {
                case "snapshot":
                    .media(stream: "snapshot", contentType: "image/jpeg", payload: SnapshotImage.jpeg)
                default:
                    .error(code: "unknown_command", message: "a camera accepts snapshot")
                }
            },
            liveHandler: live
        )
    }

    func produce(settings: SimSettings) async throws {
        // A benchmark run (a message budget) sends telemetry only.
        guard settings.messages == nil else { return try await self.produceTelemetry(settings: settings) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.produceTelemetry(settings: settings) }
            group.addTask { try await self.streamLive() }
            try await group.next()
            group.cancelAll()
        }
    }

    /// While the gateway wants live frames: one rendered frame every 1/fps seconds (the encode included), at the
    /// gateway's rate capped by our `max_fps`. `sendLiveFrame` returns once the frame is written, so a slow
    /// connection slows the camera down instead of piling frames up.
    private func streamLive() async throws {
        let renderer = LiveFrameRenderer()
        let clock = ContinuousClock()
        var number = 0
        while true {
            guard let requested = self.client.liveFPS else {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            let started = clock.now
            if let jpeg = renderer.jpeg(frame: number) {
                do {
                    try await self.client.sendLiveFrame(jpeg: jpeg)
                } catch let error as DeviceClientError where error.code == .notConnected {
                    // Dropped with the connection: the gateway starts the stream again after the reconnect.
                }
            }
            number += 1
            try await Task.sleep(until: started + .milliseconds(Int64(1000 / min(requested, self.liveMaxFPS))), clock: clock)
        }
    }

    private func produceTelemetry(settings: SimSettings) async throws {
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
