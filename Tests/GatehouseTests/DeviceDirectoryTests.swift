import GatehouseProtocol
import NIOEmbedded
import Testing

@testable import Gatehouse

@Suite struct DeviceDirectoryTests {
    func session(_ number: Int64) throws -> DeviceSession {
        let channel = EmbeddedChannel()
        return DeviceSession(
            device: "d", tokenKind: nil, tokenID: nil, number: number, connectedAt: 0, remote: "test", channel: channel,
            output: try channel.addDeviceOutput(), frames: LoopFrames(loop: channel.eventLoop), metrics: GatewayMetrics())
    }

    /// Two connects of one device race between their numbers and their attaching: the newer one stays, whichever
    /// attaches first (the older one used to replace it, and the device's availability then named a session gone).
    @Test func theNewerOfTwoRacingConnectsStays() throws {
        let directory = DeviceDirectory()
        let (older, newer) = (try session(1), try session(2))
        #expect(directory.attach(newer) == nil)
        #expect(directory.attach(older) === older)
        #expect(directory.session("d") === newer)
        let newest = try session(3)
        #expect(directory.attach(newest) === newer)
        #expect(directory.session("d") === newest)
    }

    /// A retained meta planted with a `ts` far ahead is ignored, and a held device's own meta (its `hello`) replaces
    /// whatever is known: a planted `ts` used to outrank every later `hello`, and capabilities were checked against
    /// the planted ones.
    @Test func aDevicesOwnMetaOutranksAPlantedOne() throws {
        let directory = DeviceDirectory()
        _ = directory.attach(try session(1))
        let planted = DeviceMeta(ts: Int64.max, kind: "planted", model: nil, firmware: nil, capabilities: nil)
        directory.observe(meta: planted, of: "d")
        #expect(directory.meta("d") == nil)
        let soon = DeviceMeta(ts: nowMs() + 3_600_000, kind: "planted", model: nil, firmware: nil, capabilities: nil)
        directory.observe(meta: soon, of: "d")
        #expect(directory.meta("d")?.kind == "planted")
        directory.record(meta: DeviceMeta(ts: nowMs(), kind: "thermostat", model: nil, firmware: nil, capabilities: nil), of: "d")
        #expect(directory.meta("d")?.kind == "thermostat")
    }
}
