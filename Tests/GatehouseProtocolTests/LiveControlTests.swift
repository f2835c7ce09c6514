import Testing

@testable import GatehouseProtocol

/// The gateway's `live` message and viewer-token claims (PROTOCOL.md §2, §8).
@Suite struct LiveControlTests {
    static let key = FleetKey(secret: Array("fleet-secret-of-16".utf8))

    @Test("start and stop encode in protocol order; a whole fps is an integer")
    func encoding() {
        #expect(String(decoding: LiveControl.start(fps: 5).encoded(), as: UTF8.self) == #"{"type":"live","action":"start","fps":5}"#)
        #expect(String(decoding: LiveControl.start(fps: 2.5).encoded(), as: UTF8.self) == #"{"type":"live","action":"start","fps":2.5}"#)
        #expect(String(decoding: LiveControl.stop.encoded(), as: UTF8.self) == #"{"type":"live","action":"stop"}"#)
    }

    @Test("parse reads what encode writes and refuses other shapes")
    func parsing() {
        #expect(LiveControl.parse(LiveControl.start(fps: 8).encoded()) == .start(fps: 8))
        #expect(LiveControl.parse(LiveControl.stop.encoded()) == .stop)
        for text in [#"{"type":"live","action":"start"}"#, #"{"type":"live","action":"start","fps":0}"#,
                     #"{"type":"live","action":"pause"}"#, #"{"type":"ack","seq":1}"#, "[]"] {
            #expect(LiveControl.parse(Array(text.utf8)) == nil, "\(text)")
        }
    }

    @Test("viewer claims round-trip; devices limits what a viewer may watch")
    func viewerClaims() throws {
        let claims = TokenClaims(subject: "alice", scope: .view, devices: ["cam-1"])
        let verified = try DeviceToken.verify(DeviceToken.issue(claims, key: Self.key), keys: [Self.key], now: 0)
        #expect(verified == claims)
        #expect(verified.mayView("cam-1"))
        #expect(!verified.mayView("CAM-1"))
        #expect(TokenClaims(subject: "bob", scope: .view).mayView("anything"))
        #expect(!TokenClaims(subject: "bob", scope: .view, devices: []).mayView("cam-1"))
        #expect(!TokenClaims(subject: "cam-1").mayView("cam-1"))
    }

    @Test("a scope other than device or view, or devices that is not a list of strings, is malformed", arguments: [
        #"{"sub":"v","scope":"admin"}"#, #"{"sub":"v","scope":1}"#, #"{"sub":"v","scope":"view","devices":"cam"}"#,
        #"{"sub":"v","scope":"view","devices":[1]}"#, #"{"sub":"v","scope":"view","devices":null}"#,
    ])
    func badClaims(_ claims: String) {
        let token = DeviceTokenTests.forge(header: #"{"alg":"HS256"}"#, claims: claims, secret: Self.key.secret)
        #expect(throws: TokenError.self) { try DeviceToken.verify(token, keys: [Self.key], now: 0) }
    }
}
