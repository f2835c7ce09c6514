import GatehouseProtocol
import Logging
import Synchronization
import Testing

@testable import GatehouseDevice

/// The camera side of live view: `start`/`stop` reach the handler, a higher rate starts again, a lost
/// connection stops a running stream, and `stop` without a stream is not passed on.
@Suite struct LiveStreamTests {
    final class Recorder: Sendable {
        let calls = Mutex<[String]>([])
        var handler: LiveStreamHandler {
            LiveStreamHandler(start: { fps in self.calls.withLock { $0.append("start \(fps)") } },
                              stop: { self.calls.withLock { $0.append("stop") } })
        }
    }

    let recorder = Recorder()
    let client: DeviceClient

    init() {
        client = DeviceClient(
            configuration: DeviceClientConfiguration(url: "ws://127.0.0.1:1/v1/connect", token: "t"),
            logger: Logger(label: "test"), liveHandler: recorder.handler)
    }

    @Test("start, a higher rate, then stop")
    func startRaiseStop() {
        client.handleLive(.start(fps: 5))
        #expect(client.liveFPS == 5)
        client.handleLive(.start(fps: 8))
        client.handleLive(.stop)
        #expect(client.liveFPS == nil)
        #expect(recorder.calls.withLock { $0 } == ["start 5.0", "start 8.0", "stop"])
    }

    @Test("a connection that ends while streaming stops the stream; a stop without a stream is not passed on")
    func connectionEnd() {
        client.handleLive(.stop)
        client.handleLive(.start(fps: 2))
        client.liveConnectionEnded()
        client.liveConnectionEnded()
        #expect(recorder.calls.withLock { $0 } == ["start 2.0", "stop"])
    }

    @Test("the live capability for hello")
    func capability() {
        #expect(DeviceHello.liveCapability(maxFPS: 12) == .object(JSONObject([("max_fps", .number(JSONNumber(12)))])))
        #expect(DeviceHello.liveCapability() == .object(JSONObject()))
    }
}
