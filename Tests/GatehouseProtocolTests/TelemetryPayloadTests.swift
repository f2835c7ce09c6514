import Testing

@testable import GatehouseProtocol

/// The telemetry payload, written straight to bytes: the same JSON as building the object and serializing it.
@Suite struct TelemetryPayloadTests {
    func text(_ ts: JSONNumber, _ seq: UInt64?, _ data: JSONObject) -> String {
        String(decoding: TelemetryPayload.encode(ts: ts, seq: seq, data: data), as: UTF8.self)
    }

    @Test func withAndWithoutSeq() {
        let data: JSONObject = ["temperature": 21.5, "heating": true]
        #expect(text(JSONNumber(1_700_000_000_000), 7, data) == #"{"ts":1700000000000,"seq":7,"data":{"temperature":21.5,"heating":true}}"#)
        #expect(text(JSONNumber(5), nil, data) == #"{"ts":5,"data":{"temperature":21.5,"heating":true}}"#)
        #expect(text(JSONNumber(5), .max, [:]) == #"{"ts":5,"seq":18446744073709551615,"data":{}}"#)
    }

    @Test func matchesTheSerializedObjectForAParsedMessage() throws {
        let wire = #"{"type":"telemetry","seq":3,"ts":12,"data":{"a \"b\"":[1,2e3,{"c":null}],"é":"\u0001\n"}}"#
        guard case .success(let message) = DeviceMessage.parse(Array(wire.utf8)),
            case .telemetry(let data, let ts, _) = message.body
        else { Issue.record("not a telemetry message"); return }
        let object: JSONValue = ["ts": .number(ts!), "seq": .number(UInt64(3)), "data": .object(data)]
        #expect(TelemetryPayload.encode(ts: ts!, seq: 3, data: data) == object.serialized())
    }
}

/// A parsed telemetry message keeps its `data` text if that is its compact JSON for sure (``DeviceMessage/compactData``):
/// never when it is not.
@Suite struct CompactTelemetryDataTests {
    func parse(_ wire: String) throws -> DeviceMessage {
        try DeviceMessage.parse(Array(wire.utf8)).get()
    }

    @Test func keptWhenCompact() throws {
        let message = try parse(#" {"type":"telemetry", "seq":1,"data":{"t":21.5,"on":true,"mode":"é","l":[1,{"x":null}]} } "#)
        #expect(message.compactData == Array(#"{"t":21.5,"on":true,"mode":"é","l":[1,{"x":null}]}"#.utf8))
        // The root's key may be written any way: the payload writes its own.
        #expect(try parse(#"{"type":"telemetry","d\u0061ta":{"t":1}}"#).compactData == Array(#"{"t":1}"#.utf8))
    }

    /// Whitespace inside `data`, a repeated key (also one that differs from another only in its Unicode form, which
    /// Swift's strings, and so `JSONObject`, count as the same), or an escape (even one the writer writes the same
    /// way, like `\n`: the parser does not tell them apart) drop the text.
    @Test(arguments: [
        #"{"type":"telemetry","data":{"t": 21.5}}"#,
        #"{"type":"telemetry","data":{ }}"#,
        #"{"type":"telemetry","data":{"t":[1 ]}}"#,
        #"{"type":"telemetry","data":{"t":"a\nb"}}"#,
        #"{"type":"telemetry","data":{"t":"\u0041"}}"#,
        #"{"type":"telemetry","data":{"t\/":1}}"#,
        #"{"type":"telemetry","data":{"t":1,"t":2}}"#,
        "{\"type\":\"telemetry\",\"data\":{\"\u{E9}\":1,\"e\u{301}\":2}}",
        #"{"type":"telemetry","data":{"a":{"t":1,"t":2}}}"#,
        #"{"type":"telemetry","data":{"t":1},"data":{"u":[ ]}}"#,
    ])
    func droppedWhenItMayNotBeCompact(_ wire: String) throws {
        #expect(try parse(wire).compactData == nil)
    }

    @Test func theLastOfARepeatedDataKeyWins() throws {
        let message = try parse(#"{"type":"telemetry","data":{"t" : 1},"data":{"u":2}}"#)
        #expect(message.compactData == Array(#"{"u":2}"#.utf8))
        #expect(message.body == .telemetry(data: ["u": 2], ts: nil, qos: nil))
    }

    @Test func onlyForTelemetryAndDroppedWithAChangedBody() throws {
        #expect(try parse(#"{"type":"state","data":{"t":1}}"#).compactData == nil)
        var message = try parse(#"{"type":"telemetry","data":{"t":1}}"#)
        #expect(message.compactData != nil)
        #expect(message == DeviceMessage(seq: nil, body: .telemetry(data: ["t": 1], ts: nil, qos: nil)))
        message.body = .telemetry(data: ["t": 2], ts: nil, qos: nil)
        #expect(message.compactData == nil)
    }

    /// The payload copies the text it is given rather than writing `data`.
    @Test func thePayloadCopiesTheCompactData() {
        let payload = TelemetryPayload.encode(ts: JSONNumber(5), seq: 1, data: ["t": 1], compactData: Array(#"{"kept":true}"#.utf8))
        #expect(String(decoding: payload, as: UTF8.self) == #"{"ts":5,"seq":1,"data":{"kept":true}}"#)
    }

    /// Random telemetry texts, some compact and some written otherwise (also around and in the root's `data` key):
    /// whenever the text is kept it is exactly what serializing the parsed `data` writes, so the payload is the same
    /// either way.
    @Test func keptTextIsAlwaysTheSerializedData() throws {
        var random = SplitMix64(seed: 20261206)
        var kept = 0
        for _ in 0..<3000 {
            let key = [#""data""#, #""d\u0061ta""#].randomElement(using: &random)!
            var wire = #"{"type":"telemetry","seq":7,"# + Self.space(&random) + key + Self.space(&random) + ":"
            wire += Self.space(&random) + Self.object(depth: 0, &random) + Self.space(&random)
            if Int.random(in: 0..<10, using: &random) == 0 { wire += #","data":"# + Self.object(depth: 0, &random) }
            wire += "}"
            guard case .success(let message) = DeviceMessage.parse(Array(wire.utf8)),
                case .telemetry(let data, _, _) = message.body
            else {
                Issue.record("the generator wrote something that is not a telemetry message: \(wire)")
                continue
            }
            if let compact = message.compactData {
                kept += 1
                #expect(compact == data.serialized(), "\(wire)")
                #expect(
                    TelemetryPayload.encode(ts: JSONNumber(5), seq: 7, data: data, compactData: compact)
                        == TelemetryPayload.encode(ts: JSONNumber(5), seq: 7, data: data))
            }
        }
        // Both kinds occur, so the comparison above is not vacuous.
        #expect(kept > 300 && kept < 2700, "kept \(kept) of 3000")
    }

    static func object(depth: Int, _ random: inout SplitMix64) -> String {
        let keys = [#""a""#, #""b""#, #""temp""#, #""é""#, #""\u0061""#, #""q\"""#]
        let members = (0..<Int.random(in: 0...3, using: &random)).map { _ in
            space(&random) + keys.randomElement(using: &random)! + space(&random) + ":" + space(&random)
                + value(depth: depth + 1, &random) + space(&random)
        }
        return "{" + members.joined(separator: ",") + space(&random) + "}"
    }

    static func value(depth: Int, _ random: inout SplitMix64) -> String {
        switch Int.random(in: 0..<(depth < 3 ? 6 : 4), using: &random) {
        case 0: ["0", "-1", "21.5", "1e3", "-0.5E-2", "18446744073709551616"].randomElement(using: &random)!
        case 1: ["true", "false", "null"].randomElement(using: &random)!
        case 2, 3: "\"" + ["x", "é", "\\n", "\\/", "\\u00e9", "\\\"", "ok"].randomElement(using: &random)! + "\""
        case 4:
            "[" + (0..<Int.random(in: 0...2, using: &random)).map { _ in space(&random) + value(depth: depth + 1, &random) + space(&random) }
                .joined(separator: ",") + "]"
        default: object(depth: depth, &random)
        }
    }

    /// Usually nothing, sometimes whitespace.
    static func space(_ random: inout SplitMix64) -> String {
        Int.random(in: 0..<16, using: &random) == 0 ? [" ", "\n", "\t"].randomElement(using: &random)! : ""
    }
}

/// A seeded generator (SplitMix64), so a failing case can be run again.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
