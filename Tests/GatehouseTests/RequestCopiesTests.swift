import Mosquitto
import Testing

@testable import Gatehouse

/// The two copies of one request (holder and shared subscription) are acted on once between them.
@Suite struct RequestCopiesTests {
    let copies = RequestCopies()
    let message = MQTTMessage(topic: "gh/d/request/ping", payload: Array(#"{"id":"c1"}"#.utf8))

    func claim(_ route: CommandRouter.RequestRoute, _ wouldAct: Bool, _ message: MQTTMessage? = nil) -> Bool {
        copies.claim(message ?? self.message, device: "d", command: "ping", route: route, wouldAct: wouldAct)
    }

    @Test func theDeviceLeavingBetweenTheCopiesGetsOneAnswer() {
        #expect(claim(.holder, true))  // delivered
        #expect(!claim(.shared, true))  // would answer `offline`: dropped
    }

    @Test func theDeviceArrivingBetweenTheCopiesGetsOneAnswer() {
        #expect(claim(.shared, true))  // answered `offline`
        #expect(!claim(.holder, true))  // would deliver: dropped
    }

    @Test func aCopyThatDoesNotActLeavesTheOtherFree() {
        #expect(!claim(.holder, false))
        #expect(claim(.shared, true))
        // The next identical request is a new pair.
        #expect(claim(.holder, true))
        #expect(!claim(.shared, false))
    }

    @Test func differentRequestsArePairedSeparately() {
        let other = MQTTMessage(topic: "gh/d/request/ping", payload: Array(#"{"id":"c2"}"#.utf8))
        #expect(claim(.holder, true))
        #expect(claim(.holder, true, other))
        #expect(!claim(.shared, true))
        #expect(!claim(.shared, true, other))
    }

    /// The device leaves after a request was delivered whose shared copy went to another gateway; the same
    /// request again (a snapshot button's `{}`, say) pairs with its own holder copy, not with the first
    /// request's, and is answered (`offline`).
    @Test func aRequestSentAgainPairsWithItsOwnCopyNotAnEarlierRequests() {
        #expect(claim(.holder, true))  // delivered; its shared copy went elsewhere
        #expect(!claim(.holder, false))  // the device has left
        #expect(claim(.shared, true))  // answered `offline`
    }

    @Test func anUnpairedCopyIsForgotten() async throws {
        let copies = RequestCopies(lifetime: .milliseconds(50))
        #expect(copies.claim(message, device: "d", command: "ping", route: .holder, wouldAct: true))
        try await Task.sleep(for: .milliseconds(120))
        _ = copies.claim(MQTTMessage(topic: "x", payload: []), device: "e", command: "x", route: .holder, wouldAct: false)  // sweeps
        #expect(copies.claim(message, device: "d", command: "ping", route: .shared, wouldAct: true))
    }
}
