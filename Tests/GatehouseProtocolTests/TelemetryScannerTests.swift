import Testing

@testable import GatehouseProtocol

/// The fast path for telemetry: what it reads is what the tree parse reads, its `data` the device's text, which is
/// exactly that `data` serialized; everything it is not sure of goes to the tree parse.
@Suite struct TelemetryScannerTests {
    func scan(_ wire: String) -> DeviceMessage? {
        Array(wire.utf8).withUnsafeBytes { TelemetryScanner.scan($0) }
    }

    func tree(_ wire: String) -> Result<DeviceMessage, BadMessageError> {
        Array(wire.utf8).withUnsafeBytes { DeviceMessage.parseTree($0) }
    }

    /// The message the scan read is the tree's, and its data is the tree's data serialized, byte for byte.
    func expectSameAsTheTree(_ wire: String, _ fast: DeviceMessage, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .success(let reference) = tree(wire) else {
            Issue.record("the tree parse refuses what the scan read: \(wire)", sourceLocation: sourceLocation)
            return
        }
        #expect(fast == reference, "\(wire)", sourceLocation: sourceLocation)
        if case .telemetry(let data, _, _) = fast.body, case .telemetry(let referenceData, _, _) = reference.body {
            #expect(data.serialized() == referenceData.object.serialized(), "\(wire)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [
        #"{"type":"telemetry","seq":1,"data":{"t":21.5,"on":true,"mode":"auto","l":[1,{"x":null}],"f":false}}"#,
        " {\"data\":{},\r\n\t\"type\" : \"telemetry\"} ",
        #"{"type":"telemetry","ts":-5,"qos":0,"seq":18446744073709551615,"data":{"a":[]},"extra":{"z":[1,2]},"n":null}"#,
        #"{"type":"telemetry","ts":null,"qos":null,"data":{"t":1e3,"u":-0.5E-2,"v":0,"w":"~ !#"}}"#,
        #"{"type":"telemetry","qos":1,"ts":1763731200000,"data":{"a":{"a":{"a":1}},"b":[[],[{}]]}}"#,
    ])
    func readsTheCommonForms(_ wire: String) throws {
        let fast = try #require(scan(wire))
        expectSameAsTheTree(wire, fast)
        guard case .telemetry(let data, _, _) = fast.body else { Issue.record("not telemetry"); return }
        #expect(wire.contains(#""data":"# + String(decoding: data.serialized(), as: UTF8.self)))
    }

    @Test(arguments: [
        // `data` not compact, or not plain ASCII
        #"{"type":"telemetry","data":{"t": 21.5}}"#, #"{"type":"telemetry","data":{ }}"#,
        #"{"type":"telemetry","data":{"t":[1 ]}}"#, #"{"type":"telemetry","data":{"t":"a\nb"}}"#,
        #"{"type":"telemetry","data":{"t\/":1}}"#, #"{"type":"telemetry","data":{"mode":"é"}}"#,
        "{\"type\":\"telemetry\",\"data\":{\"t\":\"\u{7F}\"}}",
        // repeated keys: in `data`, deeper, and known ones at the top
        #"{"type":"telemetry","data":{"t":1,"t":2}}"#, #"{"type":"telemetry","data":{"a":{"t":1,"t":2}}}"#,
        #"{"type":"telemetry","data":{"t":1},"data":{"u":2}}"#, #"{"type":"telemetry","seq":1,"seq":2,"data":{}}"#,
        #"{"type":"telemetry","type":"telemetry","data":{}}"#,
        // another type, or a key or value the tree reads some other way
        #"{"type":"state","data":{"t":1}}"#, #"{"type":"t\u0065lemetry","data":{}}"#, #"{"type":"telemetry","d\u0061ta":{}}"#,
        // fields the tree refuses
        #"{"type":"telemetry","seq":-1,"data":{}}"#, #"{"type":"telemetry","seq":1.0,"data":{}}"#,
        #"{"type":"telemetry","seq":"1","data":{}}"#, #"{"type":"telemetry","seq":null,"data":{}}"#,
        #"{"type":"telemetry","seq":18446744073709551616,"data":{}}"#, #"{"type":"telemetry","ts":1.5,"data":{}}"#,
        #"{"type":"telemetry","qos":2,"data":{}}"#, #"{"type":"telemetry","qos":1.0,"data":{}}"#,
        #"{"type":"telemetry","qos":"1","data":{}}"#, #"{"type":"telemetry","data":null}"#,
        #"{"type":"telemetry","data":[]}"#, #"{"type":"telemetry"}"#, #"{"data":{}}"#,
        #"{"type":"telemetry","data":{"t":1e999}}"#, #"{"type":"telemetry","data":{"t":01}}"#,
        // not JSON
        #"{"type":"telemetry","data":{},}"#, #"{"type":"telemetry","data":{"t":1}"#, #"{"type":"telemetry","data":{}} x"#,
        #"{"type":"telemetry","data":{"t":tru}}"#, "", "[]", "{}",
    ])
    func leavesEverythingElseToTheTree(_ wire: String) {
        #expect(scan(wire) == nil)
    }

    /// `DeviceMessage.parse` takes the fast path when it can, and the tree's answer otherwise: the last of a repeated
    /// `data` wins.
    @Test func parseTakesTheFastPathFirst() throws {
        let fast = try DeviceMessage.parse(Array(#"{"type":"telemetry","data":{"t":1}}"#.utf8)).get()
        guard case .telemetry(let data, _, _) = fast.body else { Issue.record("not telemetry"); return }
        #expect(data.knownByteCount == 7)
        let repeated = try DeviceMessage.parse(Array(#"{"type":"telemetry","data":{"t" : 1},"data":{"u":2}}"#.utf8)).get()
        guard case .telemetry(let last, _, _) = repeated.body else { Issue.record("not telemetry"); return }
        #expect(last == ["u": 2] && last.knownByteCount == nil)
    }

    @Test func objectsOfMoreKeysThanItTracksGoToTheTree() throws {
        func wire(keys: Int) -> String {
            #"{"type":"telemetry","data":{"# + (0..<keys).map { #""k\#($0)":\#($0)"# }.joined(separator: ",") + "}}"
        }
        expectSameAsTheTree(wire(keys: TelemetryScanner.maxKeys), try #require(scan(wire(keys: TelemetryScanner.maxKeys))))
        #expect(scan(wire(keys: TelemetryScanner.maxKeys + 1)) == nil)
        #expect((try? tree(wire(keys: TelemetryScanner.maxKeys + 1)).get()) != nil)
    }

    /// The message is depth 1, `data` 2: nesting to the tree's limit is read, one more level is the tree's to refuse.
    @Test func nestingUpToTheTreesLimit() throws {
        func wire(depth: Int) -> String {
            #"{"type":"telemetry","data":{"a":"# + String(repeating: "[", count: depth - 2) + String(repeating: "]", count: depth - 2) + "}}"
        }
        let deepest = wire(depth: JSONValue.defaultMaxDepth)
        expectSameAsTheTree(deepest, try #require(scan(deepest)))
        #expect(scan(wire(depth: JSONValue.defaultMaxDepth + 1)) == nil)
        #expect((try? tree(wire(depth: JSONValue.defaultMaxDepth + 1)).get()) == nil)
    }

    /// Random messages, most of them telemetry and many compact, some written otherwise or with fields the tree
    /// refuses: whenever the scan reads one, the tree reads the same.
    @Test func readsWhatTheTreeReads() {
        var random = SplitMix64(seed: 20261206)
        var read = 0
        for _ in 0..<5000 {
            let wire = Self.message(&random)
            guard let fast = scan(wire) else { continue }
            read += 1
            expectSameAsTheTree(wire, fast)
        }
        // Both kinds occur, so the comparison is not vacuous.
        #expect(read > 300 && read < 4700, "read \(read) of 5000")
    }

    /// Half of them clean (plain ASCII keys and strings, no whitespace below the top level), the others anything.
    static func message(_ random: inout SplitMix64) -> String {
        let clean = chance(2, &random)
        var members = [
            #""type":"# + pick(#""telemetry""#, #""telemetry""#, #""telemetry""#, #""state""#, using: &random),
            #""data":"# + (chance(8, &random) ? value(depth: 1, clean: clean, &random) : object(depth: 0, clean: clean, &random)),
        ]
        if chance(2, &random) { members.append(#""seq":"# + pick("7", "0", "18446744073709551615", "-1", "1.5", #""1""#, using: &random)) }
        if chance(3, &random) { members.append(#""ts":"# + pick("1763731200000", "-3", "null", "2.5", "1e3", "0", using: &random)) }
        if chance(3, &random) { members.append(#""qos":"# + pick("0", "1", "null", "2", "1.0", "01", using: &random)) }
        if chance(4, &random) {
            let key = pick(#""x""#, #""seq""#, #""data""#, #""\u0074ype""#, #""é""#, #""n""#, using: &random)
            members.append(key + ":" + value(depth: 1, clean: clean, &random))
        }
        members.shuffle(using: &random)
        return space(&random) + "{" + members.map { space(&random) + $0 + space(&random) }.joined(separator: ",") + "}" + space(&random)
    }

    static func object(depth: Int, clean: Bool, _ random: inout SplitMix64) -> String {
        let plain = [#""a""#, #""b""#, #""temp""#, #""c""#, #""d""#]
        let keys = clean ? plain : plain + [#""é""#, #""\u0061""#, #""q\"""#]
        let members = (0..<Int.random(in: 0...4, using: &random)).map { _ in
            space(clean: clean, &random) + keys.randomElement(using: &random)! + space(clean: clean, &random) + ":"
                + space(clean: clean, &random) + value(depth: depth + 1, clean: clean, &random) + space(clean: clean, &random)
        }
        return "{" + members.joined(separator: ",") + space(clean: clean, &random) + "}"
    }

    static func value(depth: Int, clean: Bool, _ random: inout SplitMix64) -> String {
        switch Int.random(in: 0..<(depth < 3 ? 6 : 4), using: &random) {
        case 0: ["0", "-1", "21.5", "1e3", "-0.5E-2", "18446744073709551616", "1e999", "-0"].randomElement(using: &random)!
        case 1: ["true", "false", "null"].randomElement(using: &random)!
        case 2, 3:
            "\"" + (clean ? ["x", "ok", "a b", "~"] : ["x", "é", "\\n", "\\/", "\\u00e9", "\\\"", "ok"]).randomElement(using: &random)! + "\""
        case 4:
            "[" + (0..<Int.random(in: 0...2, using: &random)).map { _ in
                space(clean: clean, &random) + value(depth: depth + 1, clean: clean, &random) + space(clean: clean, &random)
            }.joined(separator: ",") + "]"
        default: object(depth: depth, clean: clean, &random)
        }
    }

    static func pick(_ choices: String..., using random: inout SplitMix64) -> String { choices.randomElement(using: &random)! }

    /// True one time in `n`.
    static func chance(_ n: Int, _ random: inout SplitMix64) -> Bool { Int.random(in: 0..<n, using: &random) == 0 }

    /// Usually nothing, sometimes whitespace.
    static func space(_ random: inout SplitMix64) -> String {
        chance(16, &random) ? [" ", "\n", "\t"].randomElement(using: &random)! : ""
    }

    /// Nothing when clean, else ``space(_:)``.
    static func space(clean: Bool, _ random: inout SplitMix64) -> String {
        clean ? "" : space(&random)
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
