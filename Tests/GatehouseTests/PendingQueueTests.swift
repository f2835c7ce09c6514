import GatehouseProtocol
import Testing

@testable import Gatehouse

/// Queued commands taken while the broker was unreachable are neither delivered nor answered twice.
@Suite struct PendingQueueTests {
    func command(_ id: String, device: String = "d", queuedAt: Int64 = 10) -> PendingCommand {
        PendingCommand(id: CommandID(json: .string(id))!, device: device, name: "ping", params: [:], timeoutMs: 1000,
                       queuedAt: queuedAt, expiresAt: 100, gateway: "gw", replyTo: nil)
    }

    @Test func takenCommandSentAgainOnResubscriptionIsOnlyCleared() {
        let queue = PendingQueue()
        #expect(queue.observe(command("a"), device: "d", id: "a") == .new)
        queue.beginResync()
        #expect(queue.takeAll(device: "d").map(\.id.text) == ["a"])
        #expect(queue.observe(command("a"), device: "d", id: "a") == .taken)
        #expect(!queue.contains(device: "d", id: "a"))
        // The broker's clear comes back: forgotten; the same id queued again later is a new command.
        #expect(queue.observe(nil, device: "d", id: "a") == .known)
        #expect(queue.observe(command("a", queuedAt: 50), device: "d", id: "a") == .new)
    }

    @Test func resyncForgetsWhatTheBrokerNoLongerHas() {
        let queue = PendingQueue()
        queue.observe(command("kept"), device: "d", id: "kept")
        queue.observe(command("gone"), device: "d", id: "gone")
        queue.beginResync()
        #expect(queue.observe(command("kept"), device: "d", id: "kept") == .known)
        queue.endResync()
        #expect(queue.contains(device: "d", id: "kept"))
        #expect(!queue.contains(device: "d", id: "gone"))
    }

    /// Requests for ever new device ids must not grow the mirror without bound: past its limit a new command is not
    /// kept (a known one is still updated), and the count follows every way a command leaves.
    @Test func theMirrorKeepsAtMostItsLimitOfCommandsAndCountsEveryWayOut() {
        let queue = PendingQueue()
        for device in ["a", "b", "c"] { #expect(queue.observe(command("1", device: device), device: device, id: "1", limit: 3) == .new) }
        #expect(queue.observe(command("1", device: "x"), device: "x", id: "1", limit: 3) == .full)
        #expect(queue.observe(command("1", device: "a", queuedAt: 20), device: "a", id: "1", limit: 3) == .known)
        #expect(queue.count == 3 && !queue.contains(device: "x", id: "1"))
        #expect(queue.take(device: "a", id: "1") != nil && queue.count == 2)
        #expect(queue.takeAll(device: "b").count == 1 && queue.count == 1)
        #expect(queue.observe(nil, device: "c", id: "1") == .known && queue.count == 0)
        queue.observe(command("2", device: "e"), device: "e", id: "2")
        queue.beginResync()
        queue.endResync()  // the broker no longer has it
        #expect(queue.count == 0)
        queue.restore(PendingQueue.Snapshot(commands: [command("1"), command("2")], taken: []))
        #expect(queue.count == 2)
    }

    /// A planted `pending/<id>` whose name no request topic could carry (its responses could never be published, or
    /// would land on §7's `response/desired`), or with more Correlation Data than MQTT carries, is not a queued command.
    @Test func aPlantedCommandWithANameNoRequestCouldHaveIsIgnored() {
        func payload(name: String, correlation: Int = 1) -> [UInt8] {
            var command = command("1")
            command.name = name
            command.replyTo = ReplyTo(topic: "replies/r", correlationData: [UInt8](repeating: 1, count: correlation))
            return command.encoded()
        }
        // Any name a request topic can carry, as request topics take any (`set:fast`, long ones).
        for name in ["ping", "set:fast", String(repeating: "n", count: 65), "réglage"] {
            #expect(PendingCommand(device: "d", payload: payload(name: name))?.name == name, "\(name)")
        }
        for name in ["desired", "a/b", "a+", "#", "x\u{0}", "x\u{7}", ""] {
            #expect(PendingCommand(device: "d", payload: payload(name: name)) == nil, "\(name)")
        }
        #expect(PendingCommand(device: "d", payload: payload(name: "ping", correlation: 65_535)) != nil)
        #expect(PendingCommand(device: "d", payload: payload(name: "ping", correlation: 65_536)) == nil)
    }
}
