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

    func id(_ text: String) -> CommandID { CommandID(json: .string(text))! }

    /// A request that reuses the id of a command whose answer is on its way is refused as "already open": if the broker
    /// refuses that answer, the first command opens again for the device's resend, and no second one may hold its id.
    @Test func anIdWhoseAnswerIsOnItsWayStaysTakenUntilTheAnswerIsSafe() {
        let book = CommandBook()
        #expect(book.open(command("c1")) != nil)
        let taken = book.takeForAnswer("c1", device: "d")
        #expect(taken != nil)
        #expect(book.contains(id("c1"), device: "d"))
        #expect(book.open(command("c1", sentAt: 20)) == nil, "a second delivery of the id is refused")
        #expect(book.count(for: "d") == 0)
        #expect(book.take("c1", device: "d") == nil, "taken once: a timeout finds nothing")
        #expect(book.answerSettled(taken!, refused: false) == nil)
        #expect(!book.contains(id("c1"), device: "d"))
        #expect(book.open(command("c1", sentAt: 20)) != nil, "free again once the answer is safe")
    }

    @Test func aRefusedAnswerOpensTheCommandAgainInTheStepThatFreesItsId() {
        let book = CommandBook()
        let first = book.open(command("c1"))!
        #expect(book.open(command("c2")) != nil)
        let taken = book.takeForAnswer("c1", device: "d")!
        let settled = book.answerSettled(taken, refused: true)
        #expect(settled?.reopened == true)
        #expect(settled.map { $0.command.opening != first.opening } == true, "a new opening: the old deadline's timer ends nothing")
        #expect(book.count(for: "d") == 2)
        #expect(book.take("c1", device: "d", opening: first.opening) == nil)
        // The resend ends it; and the other command was never touched.
        #expect(book.takeForAnswer("c1", device: "d")?.sentAt == 10)
        #expect(book.take("c2", device: "d") != nil)
    }

    /// Shutting down: every open command gets `offline`, and one whose answer is refused afterwards does not open again
    /// (nothing would answer it before the process ends): it is handed back for its `offline` at once.
    @Test func aClosedBookOpensNothingAndHandsARefusedAnswerBack() {
        let book = CommandBook()
        #expect(book.open(command("c1")) != nil)
        let taken = book.takeForAnswer("c1", device: "d")!
        book.close()
        #expect(book.open(command("c2")) == nil)
        #expect(book.isClosed, "so the router answers such a delivery offline, not rejected")
        let settled = book.answerSettled(taken, refused: true)
        #expect(settled?.reopened == false)
        #expect(settled?.command.id == id("c1"))
        #expect(!book.contains(id("c1"), device: "d"))
    }

    /// A deadline timer is kept only with the opening it was armed for; taking that opening cancels it.
    @Test func aTimerIsKeptOnlyWhileItsOpeningIsOpen() {
        let loop = EmbeddedEventLoop()
        let book = CommandBook()
        var fired = 0
        let first = book.open(command("c1"))!
        let timer = loop.scheduleTask(in: .milliseconds(5)) { fired += 1 }
        #expect(book.keep(timer, for: first))
        var other = first
        other.opening += 1
        #expect(!book.keep(timer, for: other), "another opening of the same id")
        _ = book.take("c1", device: "d")
        loop.advanceTime(by: .milliseconds(10))
        #expect(fired == 0)
        #expect(!book.keep(timer, for: first), "taken: nothing to keep a timer for")
    }
}
