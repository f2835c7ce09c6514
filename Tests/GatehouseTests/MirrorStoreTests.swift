import Foundation
import GatehouseProtocol
import Logging
import Testing

@testable import Gatehouse

/// The local copy of the mirrors: round trip, atomic file, bound.
@Suite struct MirrorStoreTests {
    func snapshot() -> MirrorStore.Snapshot {
        var snapshot = MirrorStore.Snapshot()
        snapshot.devices.availability["mine"] = Availability(state: .offline, gateway: "gw-a", session: 7, ts: 100, reason: "disconnected")
        snapshot.devices.availability["theirs"] = Availability(state: .online, gateway: "gw-b", session: 9, ts: 200)
        snapshot.devices.meta["mine"] = DeviceMeta(ts: 1, kind: "thermostat", model: "m", firmware: "f", capabilities: ["commands": ["ping": [:]]])
        snapshot.devices.states["mine"] = StateMirror(
            current: StateDocument(ts: 3, version: 3, data: ["a": 1]), retained: StateDocument(ts: 2, version: 2, data: [:]),
            base: StateDocument(ts: 2, version: 2, data: [:]), supersededBelow: 0)
        snapshot.pending.commands = [PendingCommand(
            id: CommandID(json: "q1")!, device: "theirs", name: "ping", params: [:], timeoutMs: 5000,
            queuedAt: 10, expiresAt: 20, gateway: "gw-a", replyTo: nil)]
        snapshot.pending.taken = [PendingQueue.Taken(device: "mine", id: "q0", queuedAt: 5)]
        snapshot.desired["mine"] = DesiredDocument(ts: 4, version: 2, data: ["setpoint": 21.5])
        snapshot.desired["asleep"] = DesiredDocument(ts: 5, version: 1, data: ["mode": "heat"])  // known for nothing else
        return snapshot
    }

    @Test func roundTripsThroughTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mirror-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = MirrorStore(dir: dir, gatewayID: "gw-a", logger: Logger(label: "test"))
        #expect(store.load().devices.availability.isEmpty)
        #expect(store.save(snapshot()))
        let loaded = store.load()
        #expect(loaded.devices == snapshot().devices)
        #expect(loaded.pending.commands.map(\.id.text) == ["q1"])
        #expect(loaded.pending.taken == snapshot().pending.taken)
        #expect(loaded.desired == snapshot().desired)
        #expect(!FileManager.default.fileExists(atPath: dir + "/mirror.json.tmp"))
        // A damaged copy is ignored, not fatal: the broker has the truth.
        try Data("{\"format\":1,\"devices\":".utf8).write(to: URL(fileURLWithPath: store.path))
        #expect(store.load().devices.availability.isEmpty)
    }

    @Test func boundKeepsTheDevicesHeldHereFirst() {
        var onlyMine = MirrorStore.Snapshot()
        onlyMine.devices.availability["mine"] = snapshot().devices.availability["mine"]
        onlyMine.devices.meta["mine"] = snapshot().devices.meta["mine"]
        onlyMine.devices.states["mine"] = snapshot().devices.states["mine"]
        onlyMine.desired["mine"] = snapshot().desired["mine"]
        let limit = MirrorStore.encode(onlyMine, gatewayID: "gw-a", maxBytes: 1 << 20).bytes.count + 70
        let (bytes, left) = MirrorStore.encode(snapshot(), gatewayID: "gw-a", maxBytes: limit)
        #expect(bytes.count <= limit)
        #expect(left > 0)
        let loaded = MirrorStore.decode(bytes)!
        #expect(loaded.devices.availability["mine"] != nil)
        #expect(loaded.devices.availability["theirs"] == nil)
    }
}
