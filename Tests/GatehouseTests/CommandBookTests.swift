import GatehouseProtocol
import NIOCore
import NIOEmbedded
import Testing

@testable import Gatehouse

/// The open commands: one final response each, and an id that stays taken while a device's answer is on its way.
@Suite struct CommandBookTests {
    func command(_ id: String, device: String = "d", session: Int64 = 1, sentAt: Int64 = 10) -> OpenCommand {
        OpenCommand(id: CommandID(json: .string(id))!, device: device, session: session, name: "ping", replyTo: nil,
                    sentAt: sentAt, timeoutMs: 1000, deadline: sentAt + 1000, timer: nil)
    }

    /// A request that reuses the id of a command whose answer is on its way is refused as "already open": if the broker
    /// refuses that answer, the first command opens again for the device's resend, and no second one may hold its id.
    @Test func anIdWhoseAnswerIsOnItsWayStaysTakenUntilTheAnswerIsSafe() {
        let book = CommandBook()
        book.insert(command("c1"))
        let taken = book.takeForAnswer("c1", device: "d")
        #expect(taken != nil)
        #expect(book.contains(CommandID(json: .string("c1"))!, device: "d"))
        #expect(book.count(for: "d") == 0)
        #expect(book.take("c1", device: "d") == nil, "taken once: a timeout finds nothing")
        book.answerSettled(taken!, reopened: false)
        #expect(!book.contains(CommandID(json: .string("c1"))!, device: "d"))
        #expect(book.takeForAnswer("c1", device: "d") == nil)
    }

    @Test func aRefusedAnswerOpensTheCommandAgainInTheStepThatFreesItsId() {
        let book = CommandBook()
        book.insert(command("c1"))
        book.insert(command("c2"))
        let taken = book.takeForAnswer("c1", device: "d")!
        book.answerSettled(taken, reopened: true)
        #expect(book.count(for: "d") == 2)
        // The resend ends it; and the other command was never touched.
        #expect(book.takeForAnswer("c1", device: "d")?.sentAt == 10)
        #expect(book.take("c2", device: "d") != nil)
    }

    /// A deadline timer is kept only with the delivery it was armed for; taking that delivery cancels it.
    @Test func aTimerIsKeptOnlyWhileItsDeliveryIsOpen() {
        let loop = EmbeddedEventLoop()
        let book = CommandBook()
        var fired = 0
        let first = command("c1")
        book.insert(first)
        let timer = loop.scheduleTask(in: .milliseconds(5)) { fired += 1 }
        #expect(book.keep(timer, for: first))
        #expect(!book.keep(timer, for: command("c1", sentAt: 11)), "another delivery of the same id")
        #expect(!book.keep(timer, for: command("c1", session: 2)), "the same id on another connection")
        _ = book.take("c1", device: "d")
        loop.advanceTime(by: .milliseconds(10))
        #expect(fired == 0)
        #expect(!book.keep(timer, for: first), "taken: nothing to keep a timer for")
    }
}
