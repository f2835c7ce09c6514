import GatehouseProtocol
import Logging
import Synchronization
import Testing

@testable import GatehouseDevice

/// The client's side of the desired state (PROTOCOL.md 7) and of sleeping, against a fake gateway on loopback.
@Suite struct DesiredStateClientTests {
    /// Polls `condition` every 10 ms for at most `seconds`.
    func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    func client(_ gateway: FakeGateway, desired: DeviceDesiredHandler?) -> DeviceClient {
        var configuration = DeviceClientConfiguration(url: gateway.url, token: "not-checked-by-the-fake")
        configuration.backoff = ReconnectBackoff(minimum: .milliseconds(10), maximum: .milliseconds(50))
        return DeviceClient(configuration: configuration, logger: Logger(label: "test"), desiredHandler: desired)
    }

    @Test func theHandlerGetsTheDeltaAndReportsItAsState() async throws {
        let gateway = try await FakeGateway(afterWelcome: [.desired(version: 3, data: ["setpoint": 21.5, "mode": "heat"])])
        let updates = Mutex<[DesiredUpdate]>([])
        let clientBox = Mutex<DeviceClient?>(nil)
        let client = client(gateway) { update in
            updates.withLock { $0.append(update) }
            _ = try? await clientBox.withLock { $0 }?.reportApplied(update)
        }
        clientBox.withLock { $0 = client }
        let run = Task { try await client.run() }
        defer { run.cancel() }
        #expect(try await eventually { gateway.recorded.messages.contains { $0["type"] == "state" } })
        #expect(updates.withLock { $0 } == [DesiredUpdate(version: 3, delta: ["setpoint": 21.5, "mode": "heat"])])
        let state = try #require(gateway.recorded.messages.first { $0["type"] == "state" })
        #expect(state["data"] == ["setpoint": 21.5, "mode": "heat"])
        #expect(state["seq"] != nil, "state is acknowledged, so it survives a reconnect")
        try await gateway.stop()
    }

    @Test func onlyTheNewestUpdateWaitsWhileTheHandlerIsBusy() async throws {
        // The command after the five updates is answered (unsupported) once the reader has passed them all.
        let frames: [GatewayMessage] = (1...5).map { .desired(version: Int64($0), data: ["n": .number($0)]) }
            + [.command(id: CommandID(generated: "c-1"), name: "ping", params: [:], deadline: Int64.max)]
        let gateway = try await FakeGateway(afterWelcome: frames)
        let seen = Mutex<[Int64]>([])
        let client = client(gateway) { update in
            seen.withLock { $0.append(update.version) }
            // Busy with the first update until every frame has been read.
            while !gateway.recorded.messages.contains(where: { $0["type"] == "response" }) {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        let run = Task { try await client.run() }
        defer { run.cancel() }
        #expect(try await eventually { seen.withLock { $0.last } == 5 })
        // Normally [1, 5]: the handler took 1 and was busy while 2 to 4 were replaced by 5.
        let versions = seen.withLock { $0 }
        #expect(versions.count <= 2 && versions == versions.sorted() && versions.last == 5, "\(versions)")
        try await gateway.stop()
    }

    @Test func sleepClosesWithNormalClosureAndConnectsAgainLater() async throws {
        let gateway = try await FakeGateway(afterWelcome: [])
        let client = client(gateway, desired: nil)
        let run = Task { try await client.run() }
        defer { run.cancel() }
        #expect(try await eventually { client.welcome != nil })
        let asleep = ContinuousClock.now
        client.sleep(for: .milliseconds(400))
        #expect(try await eventually { gateway.recorded.connections.count == 2 })
        let record = gateway.recorded
        #expect(record.closeCodes.first == 1000)
        #expect(record.connections[1] - asleep >= .milliseconds(400), "no reconnect before the sleep is over")
        try await gateway.stop()
    }
}
