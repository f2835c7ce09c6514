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
}
