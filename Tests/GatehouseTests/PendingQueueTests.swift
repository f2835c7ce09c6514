import GatehouseProtocol
import Testing

@testable import Gatehouse

/// Queued commands taken while the broker was unreachable are neither delivered nor answered twice.
@Suite struct PendingQueueTests {
    func command(_ id: String, queuedAt: Int64 = 10) -> PendingCommand {
        PendingCommand(id: CommandID(json: .string(id))!, device: "d", name: "ping", params: [:], timeoutMs: 1000,
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
}
