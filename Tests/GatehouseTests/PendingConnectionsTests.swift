import NIOCore
import NIOEmbedded
import Testing

@testable import Gatehouse
@testable import GatehouseConfig

/// Connections that are not (yet) a device: capped, the oldest closed first.
@Suite struct PendingConnectionsTests {
    @Test func oldestFirstTakesTheOldestStillThere() {
        var queue = OldestFirst<String>()
        let a = queue.add("a")
        _ = queue.add("b")
        _ = queue.add("c")
        #expect(queue.remove(a) == "a")
        #expect(queue.removeOldest() == "b")
        #expect(queue.removeOldest() == "c")
        #expect(queue.removeOldest() == nil && queue.count == 0)
    }

    @Test func beyondTheCapTheOldestIsClosedAndAFinishedOneNoLongerCounts() throws {
        let config = GatewayConfig(source: ConfigSource(yamlText: "limits: {max_pending_connections: 2}", environment: [:]))
        let pending = PendingConnections(settings: SettingsStore(config), metrics: GatewayMetrics())
        let channels = (0..<4).map { _ in EmbeddedChannel() }
        for channel in channels { try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait() }
        let first = pending.add(channels[0])
        _ = pending.add(channels[1])
        pending.finished(first)  // became a device: it is not evicted
        _ = pending.add(channels[2])
        #expect(channels[0].isActive && channels[1].isActive && pending.count == 2)
        _ = pending.add(channels[3])
        #expect(!channels[1].isActive && channels[2].isActive && channels[3].isActive && pending.count == 2)
        try channels[2].close().wait()
        channels[2].embeddedEventLoop.run()  // an EmbeddedChannel completes its closeFuture on the next run
        #expect(pending.count == 1)
    }

    @Test func handshakesOverTheTimeoutAreClosedOldestFirstAndAnsweredOnesNever() throws {
        let config = GatewayConfig(source: ConfigSource(yamlText: "limits: {handshake_timeout_s: 10}", environment: [:]))
        let pending = PendingConnections(settings: SettingsStore(config), metrics: GatewayMetrics())
        let channels = (0..<4).map { _ in EmbeddedChannel() }
        for channel in channels { try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait() }
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let tickets = channels.enumerated().map { pending.add($1, now: start + .seconds(Int64($0))) }
        pending.handshakeEnded(tickets[0])  // answered (plain HTTP): open, but no longer on its first request
        pending.finished(tickets[2])  // became a device
        // Each is closed on its own loop: an EmbeddedChannel's runs its tasks on `run()`.
        func sweep(at now: NIODeadline) -> [Bool] {
            pending.closeTimedOutHandshakes(now: now)
            for channel in channels { channel.embeddedEventLoop.run() }
            return channels.map(\.isActive)
        }
        #expect(sweep(at: start + .milliseconds(10_999)) == [true, true, true, true])
        #expect(sweep(at: start + .milliseconds(12_999)) == [true, false, true, true])
        #expect(sweep(at: start + .seconds(20)) == [true, false, true, false])
    }

    @Test func aHandshakeThatEndsBeforeItsLoopClosesItStaysOpen() throws {
        let config = GatewayConfig(source: ConfigSource(yamlText: "limits: {handshake_timeout_s: 10}", environment: [:]))
        let pending = PendingConnections(settings: SettingsStore(config), metrics: GatewayMetrics())
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let ticket = pending.add(channel, now: start)
        pending.closeTimedOutHandshakes(now: start + .seconds(11))  // the close is queued on the channel's loop
        pending.finished(ticket)  // meanwhile, on that loop, the device was upgraded
        channel.embeddedEventLoop.run()
        #expect(channel.isActive)
    }
}
