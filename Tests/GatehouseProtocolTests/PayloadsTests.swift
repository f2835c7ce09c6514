import Testing

@testable import GatehouseProtocol

/// The retained payloads gateways read back count only in the shape the contract gives them (PROTOCOL §4).
@Suite("Read-back payloads")
struct PayloadsTests {
    func decodes<P: JSONPayload>(_ type: P.Type, _ text: String) -> Bool {
        P.decode(Array(text.utf8)) != nil
    }

    @Test("what the gateway writes reads back")
    func roundTrips() {
        let availability = [
            Availability(state: .online, gateway: "gw-1", session: 7, ts: 1),
            Availability(state: .offline, gateway: "gw-1", session: 7, ts: 2, reason: OfflineReason.kicked.rawValue),
            Availability(state: .offline, gateway: "gw-1", session: 7, ts: 2),
        ]
        for record in availability { #expect(Availability.decode(record.encoded()) == record) }
        let meta = [
            DeviceMeta(ts: 5, kind: "camera", model: nil, firmware: "1.2", capabilities: JSONObject([("live", .object(JSONObject()))])),
            DeviceMeta(ts: 5, kind: nil, model: nil, firmware: nil, capabilities: nil),
        ]
        for record in meta { #expect(DeviceMeta.decode(record.encoded()) == record) }
        let bridge = BridgeState(state: .online, ts: 3, version: "1.0.0")
        #expect(BridgeState.decode(bridge.encoded()) == bridge)
        let document = VersionedDocument(ts: 4, version: 0, data: JSONObject())
        #expect(VersionedDocument.decode(document.encoded()) == document)
    }

    @Test("availability: every field, a known state, a known reason only when offline", arguments: [
        #"{}"#, #"{"state":"online","gateway":"gw-1"}"#, #"{"state":"online","gateway":"gw-1","session":1}"#,
        #"{"state":"away","gateway":"gw-1","session":1,"ts":1}"#, #"{"state":"online","gateway":1,"session":1,"ts":1}"#,
        #"{"state":"online","gateway":"gw-1","session":"1","ts":1}"#, #"{"state":"online","gateway":"gw-1","session":1.5,"ts":1}"#,
        #"{"state":"online","gateway":"gw-1","session":1,"ts":1,"reason":"kicked"}"#,
        #"{"state":"offline","gateway":"gw-1","session":1,"ts":1,"reason":"bored"}"#,
        #"{"state":"offline","gateway":"gw-1","session":1,"ts":1,"reason":null}"#, #"[1]"#,
    ])
    func availabilityOfAnotherShape(text: String) {
        #expect(!decodes(Availability.self, text))
    }

    @Test("meta: every key present, each of its type or null", arguments: [
        #"{}"#, #"{"foo":1}"#, #"{"ts":1,"kind":"camera","model":null,"firmware":null}"#,
        #"{"ts":1,"kind":5,"model":null,"firmware":null,"capabilities":null}"#,
        #"{"ts":1,"kind":null,"model":null,"firmware":null,"capabilities":[]}"#,
        #"{"kind":null,"model":null,"firmware":null,"capabilities":null}"#,
    ])
    func metaOfAnotherShape(text: String) {
        #expect(!decodes(DeviceMeta.self, text))
    }

    @Test("bridge state and versioned documents: every field", arguments: [
        (false, #"{"state":"online"}"#), (false, #"{"state":"online","ts":1}"#), (false, #"{"state":"up","ts":1,"version":"1"}"#),
        (true, #"{"data":{},"version":1}"#), (true, #"{"ts":1,"data":[],"version":1}"#), (true, #"{"ts":1,"data":{},"version":-1}"#),
    ])
    func otherShapes(isDocument: Bool, text: String) {
        #expect(!(isDocument ? decodes(VersionedDocument.self, text) : decodes(BridgeState.self, text)))
    }
}
