import Testing

@testable import GatehouseProtocol

@Suite("JSON Merge Patch (RFC 7386)")
struct JSONMergePatchTests {
    /// RFC 7386 appendix A: original, patch, result.
    static let appendixA: [(String, String, String)] = [
        (#"{"a":"b"}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"b"}"#, #"{"b":"c"}"#, #"{"a":"b","b":"c"}"#),
        (#"{"a":"b"}"#, #"{"a":null}"#, #"{}"#),
        (#"{"a":"b","b":"c"}"#, #"{"a":null}"#, #"{"b":"c"}"#),
        (#"{"a":["b"]}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"c"}"#, #"{"a":["b"]}"#, #"{"a":["b"]}"#),
        (#"{"a":{"b":"c"}}"#, #"{"a":{"b":"d","c":null}}"#, #"{"a":{"b":"d"}}"#),
        (#"{"a":[{"b":"c"}]}"#, #"{"a":[1]}"#, #"{"a":[1]}"#),
        (#"["a","b"]"#, #"["c","d"]"#, #"["c","d"]"#),
        (#"{"a":"b"}"#, #"["c"]"#, #"["c"]"#),
        (#"{"a":"foo"}"#, "null", "null"),
        (#"{"a":"foo"}"#, #""bar""#, #""bar""#),
        (#"{"e":null}"#, #"{"a":1}"#, #"{"e":null,"a":1}"#),
        (#"[1,2]"#, #"{"a":"b","c":null}"#, #"{"a":"b"}"#),
        (#"{}"#, #"{"a":{"bb":{"ccc":null}}}"#, #"{"a":{"bb":{}}}"#),
    ]

    @Test("appendix A examples", arguments: 0..<appendixA.count)
    func appendix(_ index: Int) throws {
        let (original, patch, expected) = Self.appendixA[index]
        let result = JSONValue.mergePatch(target: try JSONValue(parsing: original), patch: try JSONValue(parsing: patch))
        #expect(result == (try JSONValue(parsing: expected)))
        #expect(result.serializedString() == expected)
    }

    @Test("no target behaves like a non-object target")
    func absentTarget() throws {
        let patch = try JSONValue(parsing: #"{"a":{"b":null,"c":1}}"#)
        #expect(JSONValue.mergePatch(target: nil, patch: patch).serializedString() == #"{"a":{"c":1}}"#)
        #expect(JSONValue.mergePatch(target: nil, patch: 5) == 5)
    }

    @Test("JSONObject.merging")
    func objectMerging() {
        let state: JSONObject = ["mode": "heat", "setpoint": 21, "sensor": ["t": 20, "h": 40]]
        let merged = state.merging(patch: ["setpoint": 22, "mode": nil, "sensor": ["h": nil]])
        #expect(merged == ["setpoint": 22, "sensor": ["t": 20]])
    }
}
