import Testing

@testable import GatehouseProtocol

/// The telemetry payload, written straight to bytes: the same JSON as building the object and serializing it.
@Suite struct TelemetryPayloadTests {
    func text(_ ts: JSONNumber, _ seq: UInt64?, _ data: JSONObject) -> String {
        String(decoding: TelemetryPayload.encode(ts: ts, seq: seq, data: TelemetryData(data)), as: UTF8.self)
    }

    @Test func withAndWithoutSeq() {
        let data: JSONObject = ["temperature": 21.5, "heating": true]
        #expect(text(JSONNumber(1_700_000_000_000), 7, data) == #"{"ts":1700000000000,"seq":7,"data":{"temperature":21.5,"heating":true}}"#)
        #expect(text(JSONNumber(5), nil, data) == #"{"ts":5,"data":{"temperature":21.5,"heating":true}}"#)
        #expect(text(JSONNumber(5), .max, [:]) == #"{"ts":5,"seq":18446744073709551615,"data":{}}"#)
        #expect(text(JSONNumber(5), 0, [:]) == #"{"ts":5,"seq":0,"data":{}}"#)
    }

    /// The gateway's time of receipt as `ts`: the same payload as with that number as a `JSONNumber`.
    @Test func theTimeOfReceiptIsWrittenAsItsNumber() {
        let data = TelemetryData(["t": 1])
        for (ms, seq) in [(Int64(1_700_000_000_123), UInt64?(7)), (0, nil), (-5, 1), (.max, .max)] {
            #expect(TelemetryPayload.encode(receivedMs: ms, seq: seq, data: data) == TelemetryPayload.encode(ts: JSONNumber(ms), seq: seq, data: data))
        }
    }

    /// Written over an array: its storage is reused when nothing else holds it, and left alone when something does
    /// (a message still waiting with the previous payload).
    @Test func writingOverAnArrayReusesItsStorageOnlyWhenItIsTheOnlyHolder() {
        let data = TelemetryData(compactJSON: Array(#"{"t":1}"#.utf8))
        var payload: [UInt8] = []
        TelemetryPayload.encode(receivedMs: 1_700_000_000_000, seq: 1_234_567, data: data, into: &payload)
        #expect(payload == TelemetryPayload.encode(receivedMs: 1_700_000_000_000, seq: 1_234_567, data: data))
        let storage = payload.withUnsafeBufferPointer { $0.baseAddress }
        TelemetryPayload.encode(ts: JSONNumber(5), seq: nil, data: data, into: &payload)
        #expect(String(decoding: payload, as: UTF8.self) == #"{"ts":5,"data":{"t":1}}"#)
        #expect(payload.withUnsafeBufferPointer { $0.baseAddress } == storage)
        let waiting = payload
        TelemetryPayload.encode(ts: JSONNumber(6), seq: 2, data: data, into: &payload)
        #expect(String(decoding: waiting, as: UTF8.self) == #"{"ts":5,"data":{"t":1}}"#)
        #expect(String(decoding: payload, as: UTF8.self) == #"{"ts":6,"seq":2,"data":{"t":1}}"#)
        // Storage much larger than the payload (a device's one large message) is not kept.
        var large = [UInt8](repeating: 0, count: 4096)
        TelemetryPayload.encode(ts: JSONNumber(7), seq: 3, data: data, into: &large)
        #expect(large.capacity < 1024 && String(decoding: large, as: UTF8.self) == #"{"ts":7,"seq":3,"data":{"t":1}}"#)
    }

    /// Read the general way (escapes) and by the fast path (compact ASCII, kept as text): the payload is the
    /// serialized object.
    @Test(arguments: [
        (#"{"type":"telemetry","seq":3,"ts":12,"data":{"a \"b\"":[1,2e3,{"c":null}],"é":"\u0001\n"}}"#, false),
        (#"{"type":"telemetry","seq":3,"ts":12,"data":{"a":[1,2e3,{"c":null}],"e":"x"}}"#, true),
    ])
    func matchesTheSerializedObjectForAParsedMessage(_ wire: String, keptAsText: Bool) throws {
        guard case .success(let message) = DeviceMessage.parse(Array(wire.utf8)),
            case .telemetry(let data, let ts, _) = message.body
        else { Issue.record("not a telemetry message"); return }
        #expect((data.knownByteCount != nil) == keptAsText)
        let object: JSONValue = ["ts": .number(ts!), "seq": .number(UInt64(3)), "data": .object(data.object)]
        #expect(TelemetryPayload.encode(ts: ts!, seq: 3, data: data) == object.serialized())
    }
}

/// `data` kept as the device's compact text: the same object, written as that text.
@Suite struct TelemetryDataTests {
    @Test func textAndObjectAreTheSameData() {
        let text = TelemetryData(compactJSON: Array(#"{"t":21.5,"l":[1,{"x":null}]}"#.utf8))
        let object = TelemetryData(["l": [1, ["x": nil]], "t": 21.5])
        #expect(text == object)
        #expect(text.object == object.object)
        #expect(text.serialized() == Array(#"{"t":21.5,"l":[1,{"x":null}]}"#.utf8))
        #expect(object.serialized() == Array(#"{"l":[1,{"x":null}],"t":21.5}"#.utf8))
        #expect(text.knownByteCount == 29 && object.knownByteCount == nil)
        #expect(text != TelemetryData(["t": 21.5]))
    }
}
