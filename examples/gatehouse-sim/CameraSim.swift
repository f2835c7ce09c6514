import GatehouseDevice
import Logging

/// A network camera: frame-rate and bitrate telemetry, random `motion` events, `snapshot`
/// commands answered with a real JPEG as a binary media frame, and a live stream (PROTOCOL.md §8) of
/// rendered JPEG frames while the gateway asks for one, at its rate up to the declared `max_fps`. Its desired
/// state (PROTOCOL.md 7) takes `fps` (a further cap on the live rate) and `resolution`.
final class CameraSim: SimulatedDevice {
    let id: String
    let client: DeviceClient

    let liveMaxFPS: Double
    /// Applied desired state: the live rate cap and the picture size.
    private let picture: Shared<Picture>

    struct Picture: Sendable {
        var fps: Double?
        var resolution = "640x360"

        static let resolutions = ["320x180": (320, 180), "640x360": (640, 360), "1280x720": (1280, 720)]
    }

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
            (
                "state",
                .object(JSONObject([
                    ("fps", ["type": "number", "minimum": 1, "maximum": .number(JSONNumber(liveMaxFPS) ?? JSONNumber(15))]),
                    ("resolution", ["type": "string", "enum": .array(Picture.resolutions.keys.sorted().map(JSONValue.string))]),
                ]))
            ),
        ])
    ) }

    init(id: String, token: String, settings: SimSettings) {
        self.id = id
        self.liveMaxFPS = settings.liveMaxFPS
        let picture = Shared(Picture())
        self.picture = picture
        let reports = Shared<DeviceClient?>(nil)
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
            desiredHandler: { update in
                var applied = JSONObject()
                picture.withLock { picture in
                    if let fps = update.delta["fps"]?.numberValue?.doubleValue, fps >= 1 {
                        picture.fps = fps
                        applied["fps"] = update.delta["fps"]
                    }
                    if let size = update.delta["resolution"]?.stringValue, Picture.resolutions[size] != nil {
                        picture.resolution = size
                        applied["resolution"] = .string(size)
                    }
                }
                if !applied.isEmpty { _ = try? await reports.withLock { $0 }?.reportState(applied) }
            },
            liveHandler: live
        )
        reports.withLock { $0 = self.client }
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
        var renderer = LiveFrameRenderer()
        let clock = ContinuousClock()
        var number = 0
        while true {
            guard let requested = self.client.liveFPS else {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            let wanted = self.picture.withLock { $0 }
            if let (width, height) = Picture.resolutions[wanted.resolution], (width, height) != (renderer.width, renderer.height) {
                renderer = LiveFrameRenderer(width: width, height: height)
            }
            let rate = min(requested, self.liveMaxFPS, wanted.fps ?? .infinity)
            let started = clock.now
            if let jpeg = renderer.jpeg(frame: number) {
                do {
                    try await self.client.sendLiveFrame(jpeg: jpeg)
                } catch let error as DeviceClientError where error.code == .notConnected {
                    // Dropped with the connection: the gateway starts the stream again after the reconnect.
                }
            }
            number += 1
            try await Task.sleep(until: started + .milliseconds(Int64(1000 / rate)), clock: clock)
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
